"""httpx clients between services, on the aiohttp transport: httpx's own pool collapses
under concurrency here (measured at 50 concurrent clients: a proxy on httpx's default
transport kept about 6 % of direct throughput, p99 660 ms, encode/httpx#3215; on the
aiohttp transport about 30 %). See docs/architecture.md, "HTTP between processes"."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from bugtracker_shared.problems import UpstreamUnavailableError


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


async def upstream_get(
    client: httpx.AsyncClient, path: str, *, headers: dict[str, str], service: str
) -> httpx.Response | None:
    """GET `path` from another service: its answer when 200, None when 404, and
    UpstreamUnavailableError (503) when it cannot be reached or answers anything else."""
    try:
        response = await client.get(path, headers=headers)
    except httpx.HTTPError as exc:
        raise UpstreamUnavailableError(f"The {service} service cannot be reached.") from exc
    if response.status_code == httpx.codes.NOT_FOUND:
        return None
    if response.status_code != httpx.codes.OK:
        raise UpstreamUnavailableError(f"The {service} service answered {response.status_code}.")
    return response


async def upstream_get_found(
    client: httpx.AsyncClient, path: str, *, headers: dict[str, str], service: str
) -> httpx.Response:
    """As `upstream_get`, for a resource that must exist: a 404 is unavailability too."""
    response = await upstream_get(client, path, headers=headers, service=service)
    if response is None:
        raise UpstreamUnavailableError(f"The {service} service answered 404.")
    return response


def bearer(token: str) -> dict[str, str]:
    """The headers that pass a caller's own access token on."""
    return {"Authorization": f"Bearer {token}"}
