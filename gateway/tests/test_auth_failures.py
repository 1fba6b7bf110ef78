"""Requests that fail authentication: a fixed problem detail, a budget of 401 answers per
client address, and a failed key fetch that still holds back the next one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bugtracker_shared.tokens import InvalidTokenError, TokenVerifier
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tests.conftest import AUDIENCE, ISSUER, Minter

GENERIC_DETAIL = "The access token is invalid."


@pytest.mark.parametrize(
    "claims",
    [{"key": Ed25519PrivateKey.generate()}, {"aud": "somebody-else"}, {"iss": "someone-else"}],
    ids=["forged", "wrong-audience", "wrong-issuer"],
)
async def test_the_401_detail_is_fixed_and_says_nothing_of_the_library(
    gateway: httpx.AsyncClient, mint: Minter, claims: dict[str, Any]
) -> None:
    response = await gateway.get(
        "/api/v1/projects", headers={"Authorization": f"Bearer {mint(**claims)}"}
    )

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.json()["detail"] == GENERIC_DETAIL


async def test_401_answers_are_limited_per_client_address(
    open_gateway: Callable[..., Any], backends: dict[str, Any], mint: Minter
) -> None:
    forged = {"Authorization": f"Bearer {mint(key=Ed25519PrivateKey.generate())}"}
    async with open_gateway(auth_failure_rate_limit="3/minute") as gateway:
        answers = [await gateway.get("/api/v1/projects", headers=forged) for _ in range(3)]
        answers.append(await gateway.get("/api/v1/projects"))  # no token: counted too
        answers.append(await gateway.get("/api/v1/projects", headers={"Authorization": "x"}))
        valid = await gateway.get("/api/v1/projects", headers={"Authorization": f"Bearer {mint()}"})

    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert [a.headers["ratelimit"].split(";")[1] for a in answers[:3]] == ["r=2", "r=1", "r=0"]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-policy"] == '"auth_failures";q=3;w=60'
    assert limited.headers["ratelimit"].startswith('"auth_failures";r=0;t=')
    # A valid token from the same address still passes: only failures are held back.
    assert valid.status_code == 200
    assert backends["projects"].proxied() != []


async def test_the_401_budget_is_per_client_address(
    open_gateway: Callable[..., Any], mint: Minter
) -> None:
    forged = {"Authorization": f"Bearer {mint(key=Ed25519PrivateKey.generate())}"}
    async with open_gateway(auth_failure_rate_limit="1/minute", trusted_proxies="127.0.0.1") as gw:
        one = [
            await gw.get("/api/v1/projects", headers={**forged, "X-Forwarded-For": "192.0.2.1"})
            for _ in range(2)
        ]
        other = await gw.get("/api/v1/projects", headers={**forged, "X-Forwarded-For": "192.0.2.2"})

    assert [a.status_code for a in one] == [401, 429]
    assert other.status_code == 401


async def test_a_failed_key_fetch_holds_back_the_next_fetch(mint: Minter) -> None:
    fetches = 0

    async def failing_fetch() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        raise ConnectionError("auth is down")

    verifier = TokenVerifier(failing_fetch, issuer=ISSUER, audience=AUDIENCE)
    failures = []
    for kid in ("kid-1", "kid-2", "kid-3"):
        with pytest.raises(InvalidTokenError) as caught:
            await verifier.verify(mint(headers={"kid": kid}))
        failures.append(caught.value)

    assert fetches == 1
    # Still "the keys cannot be fetched" (503 at the gateway), not "unknown key" (401).
    assert all(isinstance(failure.__cause__, ConnectionError) for failure in failures)
    assert {str(failure) for failure in failures} == {
        "The signing keys cannot be fetched right now."
    }
