"""Sessions, refresh rotation, revocation, password change, admin, search, throttling."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.integration

PASSWORD = "plum lantern orbit quietly 47"
INTERNAL_TOKEN = "internal-test-token"
AuthFactory = Any


@pytest.fixture(autouse=True)
def _helpers(kit: Any) -> None:
    global login, register_and_login  # noqa: PLW0603
    login = kit.login
    register_and_login = kit.register_and_login


login: Any = None
register_and_login: Any = None

NEW_PASSWORD = "violet harbour ledger 93 ember"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def outbox(db: asyncpg.Connection, routing_key: str) -> list[dict[str, Any]]:
    import json

    rows = await db.fetch(
        "SELECT payload FROM auth.outbox WHERE routing_key = $1 ORDER BY position", routing_key
    )
    return [json.loads(row["payload"]) for row in rows]


async def test_refresh_rotates_the_refresh_token_and_keeps_the_session(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    ann = await register_and_login(auth_client)
    first = await refresh(auth_client, ann.tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    pair = first.json()
    assert pair["refresh_token"] != ann.tokens["refresh_token"]
    # No further than the session's absolute end, 30 days after the login.
    assert 30 * 24 * 3600 - 60 <= pair["refresh_expires_in"] <= 30 * 24 * 3600
    import jwt

    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sid"] == str(ann.session_id)
    me = await auth_client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.status_code == 200
    # Only hashes are stored: neither token appears in the table.
    stored = await superuser_db.fetch("SELECT token_hash FROM auth.refresh_tokens")
    assert len(stored) == 2
    assert all(len(row["token_hash"]) == 32 for row in stored)
    import hashlib

    assert hashlib.sha256(pair["refresh_token"].encode()).digest() in {
        row["token_hash"] for row in stored
    }


async def test_reusing_a_spent_refresh_token_revokes_the_whole_session(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    ann = await register_and_login(auth_client)
    stolen = ann.tokens["refresh_token"]
    rotated = (await refresh(auth_client, stolen)).json()

    reuse = await refresh(auth_client, stolen)

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "invalid_refresh_token"
    # The legitimate holder's newer refresh token dies with the session ...
    later = await refresh(auth_client, rotated["refresh_token"])
    assert later.status_code == 401
    # ... and so do the session's access tokens, old and new.
    for access in (ann.tokens["access_token"], rotated["access_token"]):
        me = await auth_client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {access}"}
        )
        assert me.status_code == 401
        assert me.json()["code"] == "token_revoked"
    [event] = await outbox(superuser_db, "auth.session_revoked")
    assert event["data"]["session_ids"] == [str(ann.session_id)]
    assert event["data"]["reason"] == "refresh_token_reuse"
    assert event["data"]["user_id"] == str(ann.user_id)
    assert event["data"]["forget_after"] > event["data"]["revoked_at"]


async def test_refresh_fails_once_the_session_outlives_its_absolute_lifetime(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    ann = await register_and_login(auth_client)
    bob = await register_and_login(auth_client, "bob")
    # Only the sessions' start moves back; their refresh tokens stay unspent and unexpired.
    await superuser_db.execute(
        "UPDATE auth.sessions SET created_at = now() - interval '30 days 1 minute' WHERE id = $1",
        ann.session_id,
    )
    await superuser_db.execute(
        "UPDATE auth.sessions SET created_at = now() - interval '29 days' WHERE id = $1",
        bob.session_id,
    )

    expired = await refresh(auth_client, ann.tokens["refresh_token"])
    assert expired.status_code == 401
    assert expired.headers["content-type"] == "application/problem+json"
    assert expired.json()["code"] == "invalid_refresh_token"

    # Within the lifetime refresh works, but the new refresh token ends with the session.
    renewed = await refresh(auth_client, bob.tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert 24 * 3600 - 60 <= renewed.json()["refresh_expires_in"] <= 24 * 3600
    ends = await superuser_db.fetchrow(
        "SELECT t.expires_at - s.created_at AS token, s.expires_at - s.created_at AS session "
        "FROM auth.refresh_tokens t JOIN auth.sessions s ON s.id = t.session_id "
        "WHERE t.session_id = $1 AND t.used_at IS NULL",
        bob.session_id,
    )
    assert ends["token"].total_seconds() == ends["session"].total_seconds() == 30 * 24 * 3600


async def test_the_absolute_session_lifetime_is_a_setting(
    open_auth: AuthFactory, superuser_db: asyncpg.Connection
) -> None:
    async with open_auth(session_max_lifetime_seconds=3600) as client:
        ann = await register_and_login(client)
        assert ann.tokens["refresh_expires_in"] == 3600
        await superuser_db.execute(
            "UPDATE auth.sessions SET created_at = created_at - interval '1 hour' WHERE id = $1",
            ann.session_id,
        )
        response = await refresh(client, ann.tokens["refresh_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


async def test_an_unknown_refresh_token_is_401(auth_client: httpx.AsyncClient) -> None:
    response = await refresh(auth_client, "not-a-token-we-issued")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_logout_ends_the_current_session_only(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    ann = await register_and_login(auth_client)
    other = await login(auth_client, ann.email)

    response = await auth_client.post("/api/v1/auth/logout", headers=ann.headers)

    assert response.status_code == 204
    assert (await auth_client.get("/api/v1/users/me", headers=ann.headers)).status_code == 401
    assert (await refresh(auth_client, ann.tokens["refresh_token"])).status_code == 401
    assert (await auth_client.get("/api/v1/users/me", headers=other.headers)).status_code == 200
    [event] = await outbox(superuser_db, "auth.session_revoked")
    assert event["data"]["session_ids"] == [str(ann.session_id)]
    assert event["data"]["reason"] == "logout"


async def test_password_change_logs_out_every_other_session(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    laptop = await login(auth_client, ann.email)
    phone = await login(auth_client, ann.email)

    changed = await auth_client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=ann.headers,
    )

    assert changed.status_code == 204, changed.text
    assert (await auth_client.get("/api/v1/users/me", headers=ann.headers)).status_code == 200
    for session in (laptop, phone):
        refused = await auth_client.get("/api/v1/users/me", headers=session.headers)
        assert refused.json()["code"] == "token_revoked"
        assert (await refresh(auth_client, session.tokens["refresh_token"])).status_code == 401
    await login(auth_client, ann.email, NEW_PASSWORD)
    old = await auth_client.post(
        "/api/v1/auth/login", json={"email": ann.email, "password": PASSWORD}
    )
    assert old.status_code == 401


@pytest.mark.parametrize(
    ("current", "new", "status", "code"),
    [
        ("wrong current password", NEW_PASSWORD, 403, "invalid_current_password"),
        (PASSWORD, "correct horse battery staple", 422, "weak_password"),
        (PASSWORD, "CORRECT HORSE BATTERY STAPLE", 422, "weak_password"),
        (PASSWORD, "short", 422, "validation_error"),
    ],
)
async def test_password_change_is_refused_with_a_wrong_current_or_weak_new_password(
    auth_client: httpx.AsyncClient, current: str, new: str, status: int, code: str
) -> None:
    ann = await register_and_login(auth_client)
    response = await auth_client.post(
        "/api/v1/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=ann.headers,
    )
    assert response.status_code == status
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Qwertyuiopasdfgh",
        "1q2w3e4r5t6y7u8i9o0p",
        "aaaaaaaaaaaaaaaaaaaa",
        "{email}",
        "Ann Example Person",
    ],
)
async def test_registration_rejects_common_and_personal_passwords(
    auth_client: httpx.AsyncClient, password: str
) -> None:
    email = "ann.example.person@example.com"
    response = await auth_client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": password.format(email=email),
            "display_name": "Ann Example Person",
        },
    )
    assert response.status_code == 422
    assert response.json()["code"] == "weak_password"


async def test_profile_update_changes_the_display_name(auth_client: httpx.AsyncClient) -> None:
    ann = await register_and_login(auth_client)
    response = await auth_client.patch(
        "/api/v1/users/me", json={"display_name": "  Ann B.  "}, headers=ann.headers
    )
    assert response.status_code == 200
    assert response.json()["display_name"] == "Ann B."
    typo = await auth_client.patch(
        "/api/v1/users/me", json={"display_nam": "x"}, headers=ann.headers
    )
    assert typo.status_code == 422


async def test_user_search_is_a_paginated_prefix_search(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    # An admin searches the whole directory (what others see: test_user_directory.py).
    caller = await register_and_login(auth_client, "zed")
    await superuser_db.execute("UPDATE auth.users SET role = 'admin' WHERE id = $1", caller.user_id)
    for name in ("alice", "alina", "alix", "bob"):
        await auth_client.post(
            "/api/v1/auth/register",
            json={
                "email": f"{name}@example.com",
                "password": PASSWORD,
                "display_name": f"{name.title()} Smith",
            },
        )
    await auth_client.post(
        "/api/v1/auth/register",
        json={"email": "x@example.com", "password": PASSWORD, "display_name": "Ali_ter"},
    )
    first = await auth_client.get("/api/v1/users?q=ALI&limit=2", headers=caller.headers)
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2
    assert set(page["items"][0]) == {"id", "display_name", "email"}
    assert 'rel="next"' in first.headers["link"]
    second = await auth_client.get(
        "/api/v1/users",
        params={"q": "ALI", "limit": 2, "cursor": page["next_cursor"]},
        headers=caller.headers,
    )
    names = [u["display_name"] for u in page["items"] + second.json()["items"]]
    assert sorted(names) == ["Ali_ter", "Alice Smith", "Alina Smith", "Alix Smith"]
    assert second.json()["next_cursor"] is None
    # LIKE wildcards in q are literal.
    wild = await auth_client.get("/api/v1/users?q=ali_", headers=caller.headers)
    assert [u["display_name"] for u in wild.json()["items"]] == ["Ali_ter"]
    by_email = await auth_client.get("/api/v1/users?q=bob@", headers=caller.headers)
    assert [u["email"] for u in by_email.json()["items"]] == ["bob@example.com"]
    bad = await auth_client.get("/api/v1/users?q=ali&cursor=garbage", headers=caller.headers)
    assert bad.status_code == 422


async def test_admin_deactivation_revokes_every_session_and_blocks_login(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection
) -> None:
    admin = await register_and_login(auth_client, "root")
    await superuser_db.execute("UPDATE auth.users SET role = 'admin' WHERE id = $1", admin.user_id)
    ann = await register_and_login(auth_client)
    second = await login(auth_client, ann.email)

    forbidden = await auth_client.patch(
        f"/api/v1/users/{admin.user_id}", json={"role": "member"}, headers=ann.headers
    )
    assert forbidden.status_code == 403
    response = await auth_client.patch(
        f"/api/v1/users/{ann.user_id}", json={"is_active": False}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    for session in (ann, second):
        me = await auth_client.get("/api/v1/users/me", headers=session.headers)
        assert me.status_code == 401
        assert me.json()["code"] == "token_revoked"
        assert (await refresh(auth_client, session.tokens["refresh_token"])).status_code == 401
    relogin = await auth_client.post(
        "/api/v1/auth/login", json={"email": ann.email, "password": PASSWORD}
    )
    assert relogin.status_code == 401
    assert relogin.json()["code"] == "invalid_credentials"
    [deactivated] = await outbox(superuser_db, "user.deactivated")
    assert sorted(deactivated["data"]["session_ids"]) == sorted(
        [str(ann.session_id), str(second.session_id)]
    )
    assert deactivated["data"]["is_active"] is False
    [revoked] = await outbox(superuser_db, "auth.session_revoked")
    assert revoked["data"]["reason"] == "user_deactivated"
    # Role changes: promote, and the new admin may administer.
    promoted = await auth_client.patch(
        f"/api/v1/users/{ann.user_id}",
        json={"is_active": True, "role": "admin"},
        headers=admin.headers,
    )
    assert promoted.json()["role"] == "admin"
    assert promoted.json()["is_active"] is True
    await login(auth_client, ann.email)
    missing = await auth_client.patch(
        f"/api/v1/users/{uuid.uuid4()}", json={"role": "member"}, headers=admin.headers
    )
    assert missing.status_code == 404


async def test_the_internal_revoked_sessions_list_needs_the_internal_token(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    await auth_client.post("/api/v1/auth/logout", headers=ann.headers)

    for headers in ({}, {"X-Internal-Token": "guess"}, ann.headers):
        refused = await auth_client.get("/internal/revoked-sessions", headers=headers)
        assert refused.status_code == 404
    listed = await auth_client.get(
        "/internal/revoked-sessions", headers={"X-Internal-Token": INTERNAL_TOKEN}
    )
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["session_id"] == str(ann.session_id)
    assert item["forget_after"] > item["revoked_at"]
    openapi = (await auth_client.get("/openapi.json")).json()
    assert not any(path.startswith("/internal") for path in openapi["paths"])


async def test_the_internal_endpoint_is_off_without_a_configured_token(
    open_auth: AuthFactory,
) -> None:
    async with open_auth(internal_token="") as client:
        response = await client.get("/internal/revoked-sessions", headers={"X-Internal-Token": ""})
    assert response.status_code == 404


async def test_unknown_email_and_wrong_password_answers_are_byte_identical(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    answers = []
    for email, password in (
        ("nobody@example.com", PASSWORD),
        (ann.email, "wrong password but long"),
    ):
        answers.append(
            await auth_client.post(
                "/api/v1/auth/login",
                json={"email": email, "password": password},
                headers={"X-Request-ID": "same-request-id"},
            )
        )
    unknown, wrong = answers
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    assert {k: v for k, v in unknown.headers.items() if k != "date"} == {
        k: v for k, v in wrong.headers.items() if k != "date"
    }


async def test_failed_logins_are_throttled_per_ip_with_retry_after(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    statuses = []
    for attempt in range(11):
        response = await auth_client.post(
            "/api/v1/auth/login",
            json={"email": f"spray-{attempt}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429]
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    # Even the right password waits, from that address; another address does not.
    blocked = await auth_client.post(
        "/api/v1/auth/login",
        json={"email": ann.email, "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert blocked.status_code == 429
    other = await auth_client.post(
        "/api/v1/auth/login",
        json={"email": ann.email, "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
    )
    assert other.status_code == 200


async def login_from(
    client: httpx.AsyncClient, email: str, password: str, address: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_an_attackers_failures_slow_the_attacker_but_do_not_lock_the_owner_out(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    statuses = [
        (
            await login_from(auth_client, ann.email, "wrong password but long", "203.0.113.66")
        ).status_code
        for _ in range(8)
    ]
    assert statuses == [401] * 5 + [429] * 3

    # The owner, from an address that never logged in to this account before: let in.
    owner = await login_from(auth_client, ann.email, PASSWORD, "198.51.100.23")
    assert owner.status_code == 200, owner.text
    # The failing address is still slowed down, even with the right password.
    attacker = await login_from(auth_client, ann.email, PASSWORD, "203.0.113.66")
    assert attacker.status_code == 429
    assert attacker.json()["code"] == "rate_limited"
    assert int(attacker.headers["retry-after"]) >= 1


async def test_failures_from_many_addresses_hold_back_new_clients_but_not_known_ones(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)  # a success from the test client's address
    for n in range(10):
        response = await login_from(
            auth_client, ann.email, "wrong password but long", f"198.51.100.{n}"
        )
        assert response.status_code == 401
    newcomer = await login_from(auth_client, ann.email, PASSWORD, "192.0.2.44")
    assert newcomer.status_code == 429
    assert newcomer.json()["code"] == "rate_limited"
    assert int(newcomer.headers["retry-after"]) > 3000
    # The owner's client, which logged in before, is let through.
    await login(auth_client, ann.email)


async def test_wrong_current_passwords_on_password_change_are_throttled(
    auth_client: httpx.AsyncClient,
) -> None:
    ann = await register_and_login(auth_client)
    statuses = []
    for _ in range(7):
        response = await auth_client.post(
            "/api/v1/users/me/password",
            json={"current_password": "wrong current password", "new_password": NEW_PASSWORD},
            headers=ann.headers,
        )
        statuses.append(response.status_code)
    assert statuses == [403] * 5 + [429] * 2
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    # Throttled before the password is checked: the right one waits too.
    right = await auth_client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=ann.headers,
    )
    assert right.status_code == 429


async def test_login_rehashes_the_password_when_the_parameters_change(
    open_auth: AuthFactory, superuser_db: asyncpg.Connection
) -> None:
    async with open_auth() as client:
        ann = await register_and_login(client)
    before = await superuser_db.fetchval(
        "SELECT password_hash FROM auth.users WHERE id = $1", ann.user_id
    )
    assert before.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    async with open_auth(argon2_time_cost=3) as client:
        await login(client, ann.email)

    after = await superuser_db.fetchval(
        "SELECT password_hash FROM auth.users WHERE id = $1", ann.user_id
    )
    assert after.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    async with open_auth(argon2_time_cost=3) as client:
        await login(client, ann.email)
    assert (
        await superuser_db.fetchval(
            "SELECT password_hash FROM auth.users WHERE id = $1", ann.user_id
        )
        == after
    )


async def test_registration_can_be_turned_off(open_auth: AuthFactory) -> None:
    async with open_auth(registration_open=False) as client:
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": "a@example.com", "password": PASSWORD, "display_name": "A"},
        )
    assert response.status_code == 403
    assert response.json()["code"] == "registration_closed"
