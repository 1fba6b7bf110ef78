"""Personal access tokens through the gateway on the real stack (docs/adr/0042): made and
listed at auth, exchanged by the gateway for access tokens, refused within a second of
their revocation or their owner's deactivation (auth's outbox, RabbitMQ, the gateway's
revocation list and cache)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_testkit import PASSWORD, register_and_login

pytestmark = pytest.mark.e2e

DEADLINE_SECONDS = 1.0
TOKENS = "/api/v1/users/me/tokens"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_token(
    api: httpx.Client, headers: dict[str, str], scopes: list[str], **extra: Any
) -> dict[str, Any]:
    body = {"name": "ci", "scopes": scopes, "expires_in_days": 30} | extra
    response = api.post(TOKENS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def query(infra: Stack, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def refused_within(api: httpx.Client, token: str, deadline_seconds: float) -> float:
    """Poll a projects path with the token until the gateway refuses it; seconds it took."""
    started = time.monotonic()
    while True:
        response = api.get("/api/v1/projects", headers=bearer(token))
        elapsed = time.monotonic() - started
        if response.status_code == 401:
            assert response.json()["code"] in ("token_revoked", "invalid_token"), response.text
            return elapsed
        assert response.status_code == 200, response.text
        assert elapsed < deadline_seconds, f"token still accepted after {elapsed:.2f}s"
        time.sleep(0.01)  # the poll interval, not a wait for a fixed duration


def test_a_token_is_shown_once_stored_as_a_hash_and_listed_without_it(
    api: httpx.Client, infra: Stack
) -> None:
    _, session = register_and_login(api, "pat-owner")
    created = make_token(api, session, ["read"])

    assert created["token"].startswith("btp_")
    assert created["scopes"] == ["read"]
    listed = api.get(TOKENS, headers=session)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["id"] == created["id"]
    assert "token" not in item
    assert created["token"] not in listed.text
    (row,) = query(
        infra,
        "SELECT token_hash FROM auth.personal_access_tokens WHERE id = $1",
        uuid.UUID(created["id"]),
    )
    assert row["token_hash"] == hashlib.sha256(created["token"].encode()).digest()
    assert created["token"].encode() not in b"".join(
        str(tuple(r)).encode() for r in query(infra, "SELECT * FROM auth.personal_access_tokens")
    )


def test_a_read_token_reads_and_may_not_write(api: httpx.Client) -> None:
    _, session = register_and_login(api, "pat-reader")
    created = api.post(
        "/api/v1/projects",
        json={"key": f"R{uuid.uuid4().hex[:5].upper()}", "name": "R"},
        headers=session,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    token = make_token(api, session, ["read"])["token"]

    assert api.get(f"/api/v1/projects/{key}", headers=bearer(token)).status_code == 200
    assert api.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
    for method, path in (
        ("POST", f"/api/v1/projects/{key}/tickets"),
        ("PATCH", f"/api/v1/projects/{key}"),
        ("DELETE", f"/api/v1/projects/{key}"),
    ):
        response = api.request(method, path, json={"title": "x"}, headers=bearer(token))
        assert response.status_code == 403, (method, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "insufficient_scope"


def test_a_write_token_files_a_ticket_but_cannot_make_tokens_or_change_the_password(
    api: httpx.Client, settle_tickets_view: Callable[[str], None]
) -> None:
    _, session = register_and_login(api, "pat-writer")
    project = api.post(
        "/api/v1/projects",
        json={"key": f"W{uuid.uuid4().hex[:5].upper()}", "name": "W"},
        headers=session,
    )
    assert project.status_code == 201, project.text
    settle_tickets_view(project.json()["id"])
    token = make_token(api, session, ["read", "write"])["token"]

    ticket = api.post(
        f"/api/v1/projects/{project.json()['key']}/tickets",
        json={"title": "Filed by a script"},
        headers=bearer(token),
    )

    assert ticket.status_code == 201, ticket.text
    for path, body in (
        (TOKENS, {"name": "x", "scopes": ["read"], "expires_in_days": 1}),
        ("/api/v1/users/me/password", {"current_password": PASSWORD, "new_password": "x" * 20}),
    ):
        refused = api.post(path, json=body, headers=bearer(token))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "insufficient_scope"


def test_a_revoked_token_is_refused_within_a_second(api: httpx.Client) -> None:
    _, session = register_and_login(api, "pat-revoke")
    created = make_token(api, session, ["read"])
    assert api.get("/api/v1/projects", headers=bearer(created["token"])).status_code == 200

    revoked = api.delete(f"{TOKENS}/{created['id']}", headers=session)

    assert revoked.status_code == 204
    took = refused_within(api, created["token"], DEADLINE_SECONDS)
    assert took < DEADLINE_SECONDS
    assert api.get(TOKENS, headers=session).json()["items"] == []


def test_the_owners_deactivation_refuses_their_tokens_within_a_second(
    api: httpx.Client, system: Any
) -> None:
    user_id, session = register_and_login(api, "pat-deactivated")
    token = make_token(api, session, ["read", "write"])["token"]
    assert api.get("/api/v1/projects", headers=bearer(token)).status_code == 200
    login = api.post(
        "/api/v1/auth/login",
        json={"email": system.admin_email, "password": system.admin_password},
    )
    admin = bearer(login.json()["access_token"])

    done = api.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=admin)

    assert done.status_code == 200, done.text
    assert refused_within(api, token, DEADLINE_SECONDS) < DEADLINE_SECONDS


def test_unknown_and_expired_tokens_are_401(api: httpx.Client, infra: Stack) -> None:
    _, session = register_and_login(api, "pat-expired")
    created = make_token(api, session, ["read"])
    query(
        infra,
        "UPDATE auth.personal_access_tokens SET expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        uuid.UUID(created["id"]),
    )

    for token in (created["token"], "btp_" + "0" * 43):
        response = api.get("/api/v1/projects", headers=bearer(token))
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_token"
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_last_used_at_is_set_after_use(api: httpx.Client) -> None:
    _, session = register_and_login(api, "pat-used")
    created = make_token(api, session, ["read"])
    assert api.get(TOKENS, headers=session).json()["items"][0]["last_used_at"] is None

    assert api.get("/api/v1/projects", headers=bearer(created["token"])).status_code == 200

    deadline = time.monotonic() + 5
    while api.get(TOKENS, headers=session).json()["items"][0]["last_used_at"] is None:
        assert time.monotonic() < deadline, "last_used_at was not set"
        time.sleep(0.05)  # the poll interval


@pytest.mark.parametrize(
    "change",
    [
        {"expires_in_days": 0},
        {"expires_in_days": 366},
        {"scopes": ["admin"]},
        {"owner": "somebody"},
    ],
    ids=["zero-days", "366-days", "unknown-scope", "unknown-field"],
)
def test_invalid_requests_are_422(api: httpx.Client, change: dict[str, Any]) -> None:
    _, session = register_and_login(api, "pat-invalid")
    body = {"name": "ci", "scopes": ["read"], "expires_in_days": 30} | change

    response = api.post(TOKENS, json=body, headers=session)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
