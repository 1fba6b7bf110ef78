"""httpx clients between services, on the aiohttp transport (see DESIGN.md: httpx's own
pool collapses under concurrency here)."""

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
