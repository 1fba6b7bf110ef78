"""Text PostgreSQL cannot store (a NUL character) is the client's fault: 422
problem+json, and nothing is written."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

DEV = uuid.uuid4()


async def test_a_nul_character_is_a_422_and_changes_nothing(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("NUL", {DEV: ProjectRole.DEVELOPER})
    created = await tickets_api.create(DEV, "NUL", title="crash \x00 on save")
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert created.json()["code"] == "validation_error"
    assert await superuser_db.fetchval("SELECT count(*) FROM tickets.tickets") == 0
    assert await superuser_db.fetchval("SELECT count(*) FROM tickets.outbox") == 0

    listed = await tickets_api.client.get(
        "/api/v1/projects/NUL/tickets", params={"q": "a\x00b"}, headers=tickets_api.headers(DEV)
    )
    assert listed.status_code == 422, listed.text
    assert (await tickets_api.create(DEV, "NUL")).json()["key"] == "NUL-1"  # no gap
