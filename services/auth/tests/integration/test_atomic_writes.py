"""Every write of the auth service is one transaction: a fault after any of its
statements, or at its commit, leaves nothing of it behind (no user, no session, no spent
or new refresh token, no revocation, no changed password, no event), and the same
request succeeds once the fault is gone.

The faults are real PostgreSQL errors, raised by a trigger the test installs as the
superuser on the table of the next statement; a deferred constraint trigger fails the
COMMIT itself (bugtracker_testkit). The statements of each write, in order, are
those of its use case (application/use_cases.py) and repositories."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_testkit import (
    FaultCase,
    Write,
    fault_at_commit,
    fault_cases,
    fault_on,
    routing_key_is,
)

pytestmark = pytest.mark.integration

TABLES = ("users", "sessions", "refresh_tokens", "outbox")
COMMIT = fault_at_commit("INSERT", "auth.outbox")
NEW_PASSWORD = "violet harbour ledger 93 ember"


@dataclass
class Scene:
    """Ann with two sessions (`ann`, `ann_again`; the latter's first refresh token spent),
    and `root`, an administrator."""

    client: httpx.AsyncClient
    open_auth: Any
    kit: Any
    ann: Any
    ann_again: Any
    spent: str
    root: Any

    def call(
        self, method: str, path: str, *, who: Any = None, **kwargs: Any
    ) -> Awaitable[httpx.Response]:
        headers = who.headers if who is not None else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    async def login_with_new_hash_parameters(self) -> httpx.Response:
        async with self.open_auth(argon2_time_cost=3) as client:
            credentials = {"email": self.ann.email, "password": self.kit.PASSWORD}
            response: httpx.Response = await client.post("/api/v1/auth/login", json=credentials)
        return response


# A new session: the session, its refresh token, then COMMIT.
LOGIN_FAULTS = {
    "after the session insert": fault_on("INSERT", "auth.refresh_tokens"),
    "at the commit": fault_at_commit("INSERT", "auth.refresh_tokens"),
}
WRITES: dict[str, Write[Scene]] = {
    # The user (in a savepoint, for a concurrent registration of the email), its event.
    "register": Write(
        lambda s: s.call(
            "POST",
            "/auth/register",
            json={"email": "new@example.com", "password": s.kit.PASSWORD, "display_name": "New"},
        ),
        201,
        ("user.registered",),
        {"after the user insert": fault_on("INSERT", "auth.outbox"), "at the commit": COMMIT},
    ),
    "login": Write(
        lambda s: s.call(
            "POST", "/auth/login", json={"email": s.ann.email, "password": s.kit.PASSWORD}
        ),
        200,
        (),
        LOGIN_FAULTS,
    ),
    # Under new argon2 parameters the password's hash is upgraded first.
    "login with a rehash": Write(
        lambda s: s.login_with_new_hash_parameters(),
        200,
        (),
        {"after the rehash": fault_on("INSERT", "auth.sessions")} | LOGIN_FAULTS,
    ),
    # The token presented is marked spent, its successor inserted, the session extended.
    "refresh": Write(
        lambda s: s.call(
            "POST", "/auth/refresh", json={"refresh_token": s.ann.tokens["refresh_token"]}
        ),
        200,
        (),
        {
            "after the spent token's update": fault_on("INSERT", "auth.refresh_tokens"),
            "after the new token's insert": fault_on("UPDATE", "auth.sessions"),
            "at the commit": fault_at_commit("UPDATE", "auth.sessions"),
        },
    ),
    # A spent token presented again revokes its session (committed, then 401).
    "refresh with a spent token": Write(
        lambda s: s.call("POST", "/auth/refresh", json={"refresh_token": s.spent}),
        401,
        ("auth.session_revoked",),
        {"after the revocation": fault_on("INSERT", "auth.outbox"), "at the commit": COMMIT},
    ),
    "logout": Write(
        lambda s: s.call("POST", "/auth/logout", who=s.ann),
        204,
        ("auth.session_revoked",),
        {"after the revocation": fault_on("INSERT", "auth.outbox"), "at the commit": COMMIT},
    ),
    # The new hash, the other sessions' revocation, its event.
    "change password": Write(
        lambda s: s.call(
            "POST",
            "/users/me/password",
            who=s.ann,
            json={"current_password": s.kit.PASSWORD, "new_password": NEW_PASSWORD},
        ),
        204,
        ("auth.session_revoked",),
        {
            "after the password update": fault_on("UPDATE", "auth.sessions"),
            "after the revocation": fault_on("INSERT", "auth.outbox"),
            "at the commit": COMMIT,
        },
    ),
    "update profile": Write(
        lambda s: s.call("PATCH", "/users/me", who=s.ann, json={"display_name": "Annie"}),
        200,
        (),
        {"at the commit": fault_at_commit("UPDATE", "auth.users")},
    ),
    "promote": Write(
        lambda s: s.call("PATCH", f"/users/{s.ann.user_id}", who=s.root, json={"role": "admin"}),
        200,
        (),
        {"at the commit": fault_at_commit("UPDATE", "auth.users")},
    ),
    # The user, every session's revocation, then two events.
    "deactivate": Write(
        lambda s: s.call("PATCH", f"/users/{s.ann.user_id}", who=s.root, json={"is_active": False}),
        200,
        ("user.deactivated", "auth.session_revoked"),
        {
            "after the user update": fault_on("UPDATE", "auth.sessions"),
            "after the revocation": fault_on("INSERT", "auth.outbox"),
            "after the first event": fault_on(
                "INSERT", "auth.outbox", when=routing_key_is("auth.session_revoked")
            ),
            "at the commit": COMMIT,
        },
    ),
}


async def _scene(
    client: httpx.AsyncClient, open_auth: Any, kit: Any, db: asyncpg.Connection
) -> Scene:
    ann = await kit.register_and_login(client, "ann")
    ann_again = await kit.login(client, ann.email)
    spent = ann_again.tokens["refresh_token"]
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
    assert rotated.status_code == 200, rotated.text
    root = await kit.register_and_login(client, "root")
    await db.execute("UPDATE auth.users SET role = 'admin' WHERE id = $1", root.user_id)
    return Scene(client, open_auth, kit, ann, ann_again, spent, root)


@pytest.mark.parametrize("case", fault_cases(WRITES), ids=str)
async def test_a_fault_anywhere_in_a_write_leaves_nothing_of_it(
    auth_client: httpx.AsyncClient,
    open_auth: Any,
    kit: Any,
    superuser_db: asyncpg.Connection,
    case: FaultCase[Scene],
) -> None:
    scene = await _scene(auth_client, open_auth, kit, superuser_db)
    await case.assert_atomic(superuser_db, scene, tables=TABLES)
