"""The client address of the per-IP login throttle is the one uvicorn determined: the
gateway's X-Forwarded-For from the gateway's address, the socket peer from anyone else
(docs/adr/0027)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

# Each test starts auth on the run's PostgreSQL and RabbitMQ (the `open_auth` fixture).
pytestmark = pytest.mark.integration

PASSWORD = "plum lantern orbit quietly 47"
AuthFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def spray(client: httpx.AsyncClient, forwarded_for: list[str]) -> list[int]:
    return [
        (
            await client.post(
                "/api/v1/auth/login",
                json={"email": f"spray-{n}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": address},
            )
        ).status_code
        for n, address in enumerate(forwarded_for)
    ]


async def test_a_peer_other_than_the_gateway_cannot_name_its_own_address(
    open_auth: AuthFactory,
) -> None:
    async with open_auth(peer="198.51.100.200") as direct:
        statuses = await spray(direct, [f"6.6.6.{n}" for n in range(11)])

    assert statuses == [401] * 10 + [429]  # all counted against the peer


async def test_the_gateways_forwarded_for_names_the_client(open_auth: AuthFactory) -> None:
    async with open_auth() as through_gateway:
        statuses = await spray(through_gateway, [f"203.0.113.{n}" for n in range(11)])

    assert statuses == [401] * 11  # eleven clients, one failure each
