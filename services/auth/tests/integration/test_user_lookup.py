"""`POST /internal/users/lookup`: other services (the notifications mail sender) read
users' addresses, display names and whether they are active, by id, with the internal
token."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.integration

LOOKUP = "/internal/users/lookup"


async def test_lookup_answers_existing_users_active_or_not_with_the_internal_token(
    auth_client: httpx.AsyncClient, superuser_db: asyncpg.Connection, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client, "ann")
    bob = await kit.register_and_login(auth_client, "bob")
    await superuser_db.execute("UPDATE auth.users SET is_active = false WHERE id = $1", bob.user_id)
    internal = {"X-Internal-Token": kit.INTERNAL_TOKEN}

    answer = await auth_client.post(
        LOOKUP,
        json={"ids": [str(ann.user_id), str(bob.user_id), str(uuid.uuid4())]},
        headers=internal,
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    users = sorted(answer.json()["users"], key=lambda u: u["display_name"])
    assert users == [
        {"id": str(ann.user_id), "email": ann.email, "display_name": "Ann", "is_active": True},
        {"id": str(bob.user_id), "email": bob.email, "display_name": "Bob", "is_active": False},
    ]


async def test_lookup_needs_the_internal_token_and_1_to_500_ids(
    auth_client: httpx.AsyncClient, kit: Any
) -> None:
    ann = await kit.register_and_login(auth_client)
    body = {"ids": [str(ann.user_id)]}
    for headers in ({}, {"X-Internal-Token": "guess"}, ann.headers):
        refused = await auth_client.post(LOOKUP, json=body, headers=headers)
        assert refused.status_code == 404

    internal = {"X-Internal-Token": kit.INTERNAL_TOKEN}
    many = [str(uuid.uuid4()) for _ in range(500)]
    assert (await auth_client.post(LOOKUP, json={"ids": many}, headers=internal)).json() == {
        "users": []
    }
    for bad in ({"ids": []}, {"ids": [*many, str(ann.user_id)]}, {"ids": ["nope"]}, {}):
        invalid = await auth_client.post(LOOKUP, json=bad, headers=internal)
        assert invalid.status_code == 422, bad
    openapi = (await auth_client.get("/openapi.json")).json()
    assert LOOKUP not in openapi["paths"]
