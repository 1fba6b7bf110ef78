"""httpx clients between services, on the aiohttp transport: httpx's own pool collapses
under concurrency here (measured at 50 concurrent clients: a proxy on httpx's default
transport kept about 6 % of direct throughput, p99 660 ms, encode/httpx#3215; on the
aiohttp transport about 30 %). See docs/architecture.md, "HTTP between processes"."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


def service_client(
    base_url: str,
    *,
    timeout_seconds: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 1.0)),
        transport=transport or AiohttpTransport(),
    )
