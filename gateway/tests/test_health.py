from __future__ import annotations

import asyncio
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
            "webhooks": "ok",
        },
        "revocations": "ok",
        "rate_limits": "local",  # no store configured
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
            "webhooks": "ok",
        },
        "revocations": "ok",
        "rate_limits": "local",  # no store configured
    }


async def test_health_probes_each_backend_once_however_many_ask_at_once(
    gateway: httpx.AsyncClient, backends: dict[str, Any]
) -> None:
    before = {name: backend.readiness_checks for name, backend in backends.items()}

    # The first burst finds nothing probed yet: all of it waits for one round of probes.
    first = await asyncio.gather(*(gateway.get("/health") for _ in range(100)))
    # The next one, within the refresh interval, is answered from that round.
    second = await asyncio.gather(*(gateway.get("/health") for _ in range(100)))

    assert {response.status_code for response in [*first, *second]} == {200}
    assert {response.json()["status"] for response in [*first, *second]} == {"ok"}
    probes = {name: backend.readiness_checks - before[name] for name, backend in backends.items()}
    assert probes == dict.fromkeys(backends, 1)


async def test_health_probes_one_round_at_a_time_and_again_once_its_state_is_stale(
    open_gateway: Callable[..., Any], backends: dict[str, Any]
) -> None:
    async with open_gateway(health_refresh_seconds=0) as gateway:
        # However many ask at once, they share the one round of probes in flight.
        burst = await asyncio.gather(*(gateway.get("/health") for _ in range(50)))
        backends["tickets"].ready = False
        later = await gateway.get("/health")  # the state is stale at once: probed again

    assert {response.status_code for response in burst} == {200}
    assert later.status_code == 503
    assert later.json()["backends"]["tickets"] == "unavailable"
    assert backends["tickets"].readiness_checks == 2
