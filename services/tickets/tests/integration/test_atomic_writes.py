"""A ticket's creation is one transaction: a fault after any of its statements, or at its
commit, leaves nothing of it behind (no number used, no row, no watcher, no event).

The faults are real PostgreSQL errors, raised by a trigger the test installs on the table
of the statement that is to fail; a deferred constraint trigger fails the COMMIT itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

DEV, REPORTER = uuid.uuid4(), uuid.uuid4()
ROLES = {DEV: ProjectRole.DEVELOPER, REPORTER: ProjectRole.REPORTER}

FAULT_FUNCTION = """
CREATE OR REPLACE FUNCTION tickets.injected_fault() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'injected fault on %', TG_TABLE_NAME; END $$
"""

# The statements of a create, in order: counter, ticket, watchers, outbox, then COMMIT.
# A fault on the ticket insert comes after the counter bump, and so on.
FAULTS = {
    "after the counter bump": "BEFORE INSERT ON tickets.tickets FOR EACH ROW",
    "after the ticket insert": "BEFORE INSERT ON tickets.watchers FOR EACH ROW",
    "after the watcher inserts": "BEFORE INSERT ON tickets.outbox FOR EACH ROW",
    "at the commit": ("AFTER INSERT ON tickets.outbox DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"),
}


@asynccontextmanager
async def injected_fault(db: asyncpg.Connection, when: str) -> AsyncIterator[None]:
    constraint = "CONSTRAINT " if "DEFERRED" in when else ""
    await db.execute(FAULT_FUNCTION)
    await db.execute(
        f"CREATE {constraint}TRIGGER injected_fault {when} "
        "EXECUTE FUNCTION tickets.injected_fault()"
    )
    table = when.split(" ON ")[1].split(maxsplit=1)[0]
    try:
        yield
    finally:
        await db.execute(f"DROP TRIGGER injected_fault ON {table}")
        await db.execute("DROP FUNCTION tickets.injected_fault()")


async def _state(db: asyncpg.Connection) -> dict[str, Any]:
    return {
        "tickets": await db.fetchval("SELECT count(*) FROM tickets.tickets"),
        "watchers": await db.fetchval("SELECT count(*) FROM tickets.watchers"),
        "events": await db.fetchval("SELECT count(*) FROM tickets.outbox"),
        "counter": await db.fetchval("SELECT last_number FROM tickets.project_counters"),
    }


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_fault_anywhere_in_a_create_leaves_nothing_of_it(
    tickets_api: Any, superuser_db: asyncpg.Connection, fault: str
) -> None:
    tickets_api.projects.add("ATOM", ROLES)
    first = await tickets_api.create(DEV, "ATOM", assignee_id=str(REPORTER))
    assert first.status_code == 201, first.text
    before = await _state(superuser_db)
    assert before == {"tickets": 1, "watchers": 2, "events": 2, "counter": 1}

    async with injected_fault(superuser_db, FAULTS[fault]):
        failed = await tickets_api.create(DEV, "ATOM", assignee_id=str(REPORTER))
    assert failed.status_code == 500, failed.text
    assert failed.json()["code"] == "internal_error"

    assert await _state(superuser_db) == before
    following = await tickets_api.create(DEV, "ATOM")
    assert following.status_code == 201, following.text
    assert following.json()["key"] == "ATOM-2"  # no number was lost to the failed create
