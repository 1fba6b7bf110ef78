from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx


async def test_health_is_ok_when_every_backend_is_ready(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "backends": {
            "auth": "ok",
            "projects": "ok",
            "tickets": "ok",
            "notifications": "ok",
        },
        "revocations": "ok",
    }


async def test_health_is_degraded_when_a_backend_is_not_ready_or_down(
    open_gateway: Callable[..., Any], backends: dict[str, Any], dead_url: str
) -> None:
    backends["projects"].ready = False

    async with open_gateway(notifications_url=dead_url) as gateway:
        response = await gateway.get("/health")

    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "backends": {
            "auth": "ok",
            "projects": "unavailable",
            "tickets": "ok",
            "notifications": "unavailable",
        },
        "revocations": "ok",
    }
