"""Personal access tokens at the gateway (docs/adr/0042): exchanged once at the fake auth
for a minted access token, which replaces them on the way to the backend; cached,
single-flight, evicted on revocation; scopes enforced; uses reported in one call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from bugtracker_gateway.main import create_app
from bugtracker_gateway.settings import Settings
from bugtracker_shared.events import raw_event
from bugtracker_testkit import app_client
from fastapi import FastAPI

from gateway.tests.conftest import FakeBackend, GatewayFactory

pytestmark = pytest.mark.usefixtures("backends")

READER = "btp_" + "r" * 43
WRITER = "btp_" + "w" * 43


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(backends: dict[str, FakeBackend]) -> FakeBackend:
    fake = backends["auth"]
    fake.personal_tokens = {
        READER: {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "scope": "read"},
        WRITER: {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "scope": "read write"},
    }
    return fake


@pytest.fixture
async def app_and_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app_client(app) as client:
        yield app, client


def revocation(user_id: str, session_ids: list[str]) -> Any:
    return raw_event(
        "auth.session_revoked",
        service="auth",
        subject=user_id,
        sequence=1,
        data={"user_id": user_id, "session_ids": session_ids, "forget_after": None},
        actor_id=None,
        correlation_id=None,
    )


async def test_a_personal_token_is_exchanged_once_and_replaced_by_the_minted_token(
    gateway: httpx.AsyncClient, backends: dict[str, FakeBackend], auth: FakeBackend
) -> None:
    for _ in range(3):
        response = await gateway.get("/api/v1/projects", headers=bearer(WRITER))
        assert response.status_code == 200, response.text

    assert auth.exchanges == 1
    forwarded = [seen.header("authorization") for seen in backends["projects"].proxied()]
    assert len(forwarded) == 3
    assert all(value and not value.startswith("Bearer btp_") for value in forwarded)
    assert all(WRITER not in str(seen.headers) for seen in backends["projects"].proxied())
    claims = jwt.decode(str(forwarded[0]).split()[1], options={"verify_signature": False})
    assert claims["sid"] == auth.personal_tokens[WRITER]["sid"]
    assert claims["scope"] == "read write"


async def test_concurrent_requests_with_one_token_wait_for_one_exchange(
    gateway: httpx.AsyncClient, auth: FakeBackend
) -> None:
    auth.exchange_gate.clear()
    requests = [
        asyncio.create_task(gateway.get("/api/v1/projects", headers=bearer(READER)))
        for _ in range(10)
    ]
    async with asyncio.timeout(5):
        await auth.exchange_started.wait()
    await asyncio.sleep(0)  # let the other requests reach the gateway's exchange too
    auth.exchange_gate.set()
    answers = await asyncio.gather(*requests)

    assert [a.status_code for a in answers] == [200] * 10
    assert auth.exchanges == 1


async def test_a_read_token_may_only_get_and_head(
    gateway: httpx.AsyncClient, backends: dict[str, FakeBackend], auth: FakeBackend
) -> None:
    assert (await gateway.get("/api/v1/projects", headers=bearer(READER))).status_code == 200
    assert (await gateway.head("/api/v1/projects", headers=bearer(READER))).status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await gateway.request(
            method, "/api/v1/projects/PRJ", headers=bearer(READER), json={}
        )
        assert response.status_code == 403, method
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert [seen.method for seen in backends["projects"].proxied()] == ["GET", "HEAD"]
    written = await gateway.post("/api/v1/projects", headers=bearer(WRITER), json={})
    assert written.status_code == 200


async def test_a_jwt_with_a_read_scope_is_held_to_it_too(
    gateway: httpx.AsyncClient, mint: Any
) -> None:
    token = mint(scope="read")
    assert (await gateway.get("/api/v1/projects", headers=bearer(token))).status_code == 200
    refused = await gateway.post("/api/v1/projects", headers=bearer(token), json={})
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"


async def test_an_unknown_token_is_401_invalid_token(
    gateway: httpx.AsyncClient, backends: dict[str, FakeBackend], auth: FakeBackend
) -> None:
    response = await gateway.get("/api/v1/projects", headers=bearer("btp_unknown"))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert backends["projects"].proxied() == []


async def test_auth_unreachable_is_503(
    open_gateway: GatewayFactory, dead_url: str, backends: dict[str, FakeBackend]
) -> None:
    async with open_gateway(auth_url=dead_url, revocations_startup_wait_seconds=0.1) as gateway:
        response = await gateway.get("/api/v1/projects", headers=bearer(READER))

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
    assert backends["projects"].proxied() == []


async def test_a_revoked_token_is_refused_and_its_cache_entry_evicted(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], auth: FakeBackend
) -> None:
    app, gateway = app_and_client
    claims = auth.personal_tokens[WRITER]
    assert (await gateway.get("/api/v1/projects", headers=bearer(WRITER))).status_code == 200
    assert len(app.state.personal_tokens) == 1

    await app.state.revocations.on_event(revocation(claims["sub"], [claims["sid"]]))

    assert len(app.state.personal_tokens) == 0
    refused = await gateway.get("/api/v1/projects", headers=bearer(WRITER))
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"


async def test_an_entry_near_its_expiry_is_exchanged_again(
    gateway: httpx.AsyncClient, auth: FakeBackend
) -> None:
    auth.personal_tokens[READER]["lifetime_seconds"] = 20  # within the 30 s margin
    for _ in range(2):
        assert (await gateway.get("/api/v1/projects", headers=bearer(READER))).status_code == 200
    assert auth.exchanges == 2


async def test_uses_are_reported_to_auth_in_one_call(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], auth: FakeBackend
) -> None:
    app, gateway = app_and_client
    for token in (READER, WRITER, READER):
        assert (await gateway.get("/api/v1/projects", headers=bearer(token))).status_code == 200

    await app.state.personal_tokens.flush()
    await app.state.personal_tokens.flush()  # nothing new: no call

    (report,) = auth.uses_reported
    assert sorted(use["id"] for use in report["uses"]) == sorted(
        auth.personal_tokens[t]["sid"] for t in (READER, WRITER)
    )
