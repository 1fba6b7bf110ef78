"""Personal access tokens on PostgreSQL through auth's HTTP API (docs/adr/0042): the
public endpoints, the gateway's internal exchange and usage report, and auth's own
per-request check of a token minted for a personal access token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

pytestmark = pytest.mark.integration

INTERNAL = {"X-Internal-Token": "internal-test-token"}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    payload = {"name": "script", "scopes": ["read"], "expires_in_days": 30} | body
    return await client.post("/api/v1/users/me/tokens", json=payload, headers=headers)


async def exchange(client: httpx.AsyncClient, secret: str) -> httpx.Response:
    return await client.post("/internal/tokens/exchange", json={"token": secret}, headers=INTERNAL)


async def test_create_list_exchange_and_revoke(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    created = await create(auth_client, ann.headers, scopes=["read", "write"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("btp_")
    assert len(body["token"]) == 4 + 43  # 256 bits in base62
    assert created.headers["cache-control"] == "no-store"
    assert created.headers["location"] == f"/api/v1/users/me/tokens/{body['id']}"
    assert body["scopes"] == ["read", "write"]

    rows = await superuser_db.fetch("SELECT * FROM auth.personal_access_tokens")
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(body["token"].encode()).digest()
    assert body["token"] not in json.dumps([dict(r) for r in rows], default=str)

    listed = await auth_client.get("/api/v1/users/me/tokens", headers=ann.headers)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert "token" not in item
    assert item["last_used_at"] is None

    exchanged = await exchange(auth_client, body["token"])
    assert exchanged.status_code == 200, exchanged.text
    answer = exchanged.json()
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(ann.user_id)
    assert claims["sid"] == body["id"] == answer["token_id"]
    assert claims["scope"] == "read write"
    used = await superuser_db.fetchval("SELECT last_used_at FROM auth.personal_access_tokens")
    assert used is not None

    # Auth's own check accepts the token id as the session of the minted token.
    minted = {"Authorization": f"Bearer {answer['access_token']}"}
    me = await auth_client.get("/api/v1/users/me", headers=minted)
    assert me.status_code == 200, me.text

    revoked = await auth_client.delete(f"/api/v1/users/me/tokens/{body['id']}", headers=ann.headers)
    assert revoked.status_code == 204
    payloads = [
        json.loads(r["payload"])
        for r in await superuser_db.fetch(
            "SELECT payload FROM auth.outbox WHERE routing_key = 'auth.session_revoked'"
        )
    ]
    assert [(p["data"]["session_ids"], p["data"]["reason"]) for p in payloads] == [
        ([body["id"]], "token_revoked")
    ]
    assert (await exchange(auth_client, body["token"])).status_code == 401
    refused = await auth_client.get("/api/v1/users/me", headers=minted)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    seed = await auth_client.get("/internal/revoked-sessions", headers=INTERNAL)
    assert body["id"] in {item["session_id"] for item in seed.json()["items"]}
    again = await auth_client.delete(f"/api/v1/users/me/tokens/{body['id']}", headers=ann.headers)
    assert again.status_code == 404


async def test_a_minted_token_cannot_make_tokens_change_the_password_or_write_if_read_only(
    auth_client: httpx.AsyncClient, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    read_only = (await create(auth_client, ann.headers)).json()
    writer = (await create(auth_client, ann.headers, scopes=["read", "write"])).json()
    as_reader = {
        "Authorization": "Bearer "
        + (await exchange(auth_client, read_only["token"])).json()["access_token"]
    }
    as_writer = {
        "Authorization": "Bearer "
        + (await exchange(auth_client, writer["token"])).json()["access_token"]
    }

    for headers in (as_reader, as_writer):
        made = await create(auth_client, headers)
        assert made.status_code == 403, made.text
        assert made.json()["code"] == "insufficient_scope"
        password = await auth_client.post(
            "/api/v1/users/me/password",
            json={"current_password": kit.PASSWORD, "new_password": "violet harbour 93 ember x"},
            headers=headers,
        )
        assert password.status_code == 403
        assert password.json()["code"] == "insufficient_scope"
    renamed = await auth_client.patch(
        "/api/v1/users/me", json={"display_name": "Reader"}, headers=as_reader
    )
    assert renamed.status_code == 403
    assert renamed.json()["code"] == "insufficient_scope"
    assert "insufficient_scope" in renamed.headers["www-authenticate"]
    assert (await auth_client.get("/api/v1/users/me", headers=as_reader)).status_code == 200
    renamed = await auth_client.patch(
        "/api/v1/users/me", json={"display_name": "Writer"}, headers=as_writer
    )
    assert renamed.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_days": 0},
        {"expires_in_days": 366},
        {"scopes": ["admin"]},
        {"scopes": ["write"]},
        {"scopes": []},
        {"scopes": ["read", "read"]},
        {"name": ""},
        {"owner": "someone"},
    ],
)
async def test_invalid_requests_are_422(
    auth_client: httpx.AsyncClient, kit: Any, body: dict[str, Any]
) -> None:
    ann = await kit.register_and_login(auth_client)
    response = await create(auth_client, ann.headers, **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_cap_holds_under_concurrent_creations(open_auth: Any, kit: Any) -> None:
    async with open_auth(max_personal_access_tokens=3) as client:
        ann = await kit.register_and_login(client)
        answers = await asyncio.gather(*(create(client, ann.headers) for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [409] * 5
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"conflict"}


async def test_deactivation_ends_tokens_and_the_gateway_seed_lists_them(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    token = (await create(auth_client, ann.headers)).json()
    admin = await kit.register_and_login(auth_client, "root")
    await superuser_db.execute("UPDATE auth.users SET role = 'admin' WHERE id = $1", admin.user_id)

    done = await auth_client.patch(
        f"/api/v1/users/{ann.user_id}", json={"is_active": False}, headers=admin.headers
    )

    assert done.status_code == 200, done.text
    assert (await exchange(auth_client, token["token"])).status_code == 401
    payload = json.loads(
        await superuser_db.fetchval(
            "SELECT payload FROM auth.outbox WHERE routing_key = 'user.deactivated'"
        )
    )
    assert token["id"] in payload["data"]["session_ids"]
    assert str(ann.session_id) in payload["data"]["session_ids"]


async def test_the_usage_report_writes_only_what_is_news(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    first = (await create(auth_client, ann.headers)).json()
    second = (await create(auth_client, ann.headers)).json()
    now = datetime.now(UTC)
    await superuser_db.execute(
        "UPDATE auth.personal_access_tokens SET last_used_at = $1 WHERE id = $2",
        now - timedelta(seconds=30),
        uuid.UUID(second["id"]),
    )

    report = await auth_client.post(
        "/internal/tokens/used",
        json={
            "uses": [
                {"id": first["id"], "used_at": now.isoformat()},
                {"id": second["id"], "used_at": now.isoformat()},
                {"id": str(uuid.uuid4()), "used_at": now.isoformat()},
            ]
        },
        headers=INTERNAL,
    )

    assert report.status_code == 204, report.text
    rows = {
        str(r["id"]): r["last_used_at"]
        for r in await superuser_db.fetch(
            "SELECT id, last_used_at FROM auth.personal_access_tokens"
        )
    }
    assert rows[first["id"]] == now
    assert rows[second["id"]] == now - timedelta(seconds=30)  # within a minute: unchanged


async def test_the_internal_endpoints_need_the_internal_token(
    auth_client: httpx.AsyncClient,
) -> None:
    response = await auth_client.post("/internal/tokens/exchange", json={"token": "btp_x"})
    assert response.status_code == 404
    response = await auth_client.post("/internal/tokens/used", json={"uses": []})
    assert response.status_code == 404
