"""Every write of the tickets service is one transaction: a fault after any of its
statements, or at its commit, leaves nothing of it behind (no number used, no row, no
version, no history entry, no watcher, no idempotency claim, no event), and the same
request succeeds once the fault is gone.

The faults are real PostgreSQL errors, raised by a trigger the test installs as the
superuser on the table of the next statement; a deferred constraint trigger fails the
COMMIT itself (bugtracker_testkit). The statements of each write, in order, are those of
its use case (application/use_cases.py, comments_and_watchers.py, comment_writing.py,
ticket_events.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_shared.permissions import ProjectRole
from bugtracker_testkit import (
    FaultCase,
    Write,
    assert_write_is_atomic,
    fault_at_commit,
    fault_cases,
    fault_on,
    routing_key_is,
)

pytestmark = pytest.mark.integration

DEV, OTHER, LEAD, REPORTER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ROLES = {
    DEV: ProjectRole.DEVELOPER,
    OTHER: ProjectRole.DEVELOPER,
    LEAD: ProjectRole.MAINTAINER,
    REPORTER: ProjectRole.REPORTER,
}
# Every table a write of this service may touch.
TABLES = (
    "tickets",
    "project_counters",
    "comments",
    "history",
    "watchers",
    "idempotency_keys",
    "milestones",
    "relations",
    "outbox",
)

COMMIT = fault_at_commit("INSERT", "tickets.outbox")


# A create is one statement on the unit of work's driver connection (a CTE: the counter
# bump, the ticket, its watchers, its events), then COMMIT; a fault on one of its parts
# fails it after the parts before it ran. (When these were separate statements, before
# bugtracker_shared.db.session_driver began the transaction on that connection, each ran
# in autocommit, and every one of these faults left the statements before it behind.)
CREATE_FAULTS = {
    "after the counter bump": fault_on("INSERT", "tickets.tickets"),
    "after the ticket insert": fault_on("INSERT", "tickets.watchers"),
    "after the watcher inserts": fault_on("INSERT", "tickets.outbox"),
    "after the first event": fault_on(
        "INSERT", "tickets.outbox", when=routing_key_is("ticket.assigned")
    ),
    "at the commit": COMMIT,
}


@pytest.mark.parametrize("fault", CREATE_FAULTS)
async def test_a_fault_anywhere_in_a_create_leaves_nothing_of_it(
    tickets_api: Any, superuser_db: asyncpg.Connection, fault: str
) -> None:
    tickets_api.projects.add("ATOM", ROLES)
    first = await tickets_api.create(DEV, "ATOM", assignee_id=str(REPORTER))
    assert first.status_code == 201, first.text

    created = await assert_write_is_atomic(
        superuser_db,
        CREATE_FAULTS[fault],
        lambda: tickets_api.create(DEV, "ATOM", assignee_id=str(REPORTER)),
        tables=TABLES,
        status=201,
        events=("ticket.created", "ticket.assigned"),
    )
    assert created.json()["key"] == "ATOM-2"  # no number was lost to the failed create


@dataclass
class Scene:
    """Project ATOM: ATOM-1 reported by DEV (who watches it and has commented on it;
    OTHER does not watch it), ATOM-2, deleted, and ATOM-3."""

    api: Any
    comment: str

    def call(
        self, user: uuid.UUID, method: str, path: str, **kwargs: Any
    ) -> Awaitable[httpx.Response]:
        headers = self.api.headers(user) | kwargs.pop("headers", {})
        return self.api.client.request(  # type: ignore[no-any-return]
            method, f"/api/v1{path}", headers=headers, **kwargs
        )


T1 = "/tickets/ATOM-1"
# What a change of a ticket runs after locking it: the ticket update, its history
# entries, (the watcher list read for) its event, then COMMIT.
CHANGE_FAULTS = {
    "after the ticket update": fault_on("INSERT", "tickets.history"),
    "after the history entries": fault_on("INSERT", "tickets.outbox"),
    "at the commit": COMMIT,
}
WRITES: dict[str, Write[Scene]] = {
    # The key's claim (with the removal of an expired one) comes first; the rest is a
    # create as above.
    "create with an Idempotency-Key": Write(
        lambda s: s.call(
            DEV,
            "POST",
            "/projects/ATOM/tickets",
            json={"title": "Once"},
            headers={"Idempotency-Key": "create-1"},
        ),
        201,
        ("ticket.created",),
        {
            "after the key's claim": fault_on("INSERT", "tickets.project_counters"),
            "at the commit": COMMIT,
        },
    ),
    "update": Write(
        lambda s: s.call(DEV, "PATCH", T1, json={"title": "Renamed", "priority": "high"}),
        200,
        ("ticket.updated",),
        CHANGE_FAULTS,
    ),
    # The new assignee becomes a watcher first.
    "assign": Write(
        lambda s: s.call(DEV, "PUT", f"{T1}/assignee", json={"assignee_id": str(OTHER)}),
        200,
        ("ticket.assigned",),
        {"after the watcher insert": fault_on("UPDATE", "tickets.tickets")} | CHANGE_FAULTS,
    ),
    # A change, then the comment, its author's watch and its event.
    "transition with a comment": Write(
        lambda s: s.call(
            OTHER, "POST", f"{T1}/transitions", json={"to": "in_progress", "comment": "On it"}
        ),
        200,
        ("ticket.status_changed", "ticket.commented"),
        {
            "after the ticket update": fault_on("INSERT", "tickets.history"),
            "after the history entries": fault_on("INSERT", "tickets.outbox"),
            "after the first event": fault_on("INSERT", "tickets.comments"),
            "after the comment insert": fault_on("INSERT", "tickets.watchers"),
            "after the watcher insert": fault_on(
                "INSERT", "tickets.outbox", when=routing_key_is("ticket.commented")
            ),
            "at the commit": COMMIT,
        },
    ),
    "comment": Write(
        lambda s: s.call(OTHER, "POST", f"{T1}/comments", json={"body": "Seen it too"}),
        201,
        ("ticket.commented",),
        {
            "after the comment insert": fault_on("INSERT", "tickets.watchers"),
            "after the watcher insert": fault_on("INSERT", "tickets.outbox"),
            "at the commit": COMMIT,
        },
    ),
    "comment with an Idempotency-Key": Write(
        lambda s: s.call(
            OTHER,
            "POST",
            f"{T1}/comments",
            json={"body": "Seen it too"},
            headers={"Idempotency-Key": "comment-1"},
        ),
        201,
        ("ticket.commented",),
        {"after the key's claim": fault_on("INSERT", "tickets.comments"), "at the commit": COMMIT},
    ),
    # A comment's edit and removal are one statement each: the commit is what can fail.
    "comment edit": Write(
        lambda s: s.call(DEV, "PATCH", f"{T1}/comments/{s.comment}", json={"body": "Edited"}),
        200,
        (),
        {"at the commit": fault_at_commit("UPDATE", "tickets.comments")},
    ),
    "comment delete": Write(
        lambda s: s.call(DEV, "DELETE", f"{T1}/comments/{s.comment}"),
        204,
        (),
        {"at the commit": fault_at_commit("UPDATE", "tickets.comments")},
    ),
    "delete": Write(lambda s: s.call(LEAD, "DELETE", T1), 204, ("ticket.deleted",), CHANGE_FAULTS),
    "restore": Write(
        lambda s: s.call(LEAD, "POST", "/tickets/ATOM-2/restore"),
        200,
        ("ticket.updated",),
        CHANGE_FAULTS,
    ),
    # A bulk change writes every ticket, then each one's history entries, watcher and
    # events, in one transaction.
    "bulk change": Write(
        lambda s: s.call(
            DEV,
            "POST",
            "/projects/ATOM/tickets/bulk",
            json={
                "tickets": ["ATOM-1", "ATOM-3"],
                "set": {"assignee_id": str(OTHER), "status": "in_progress"},
            },
        ),
        200,
        ("ticket.assigned", "ticket.status_changed") * 2,
        {
            "after the ticket updates": fault_on("INSERT", "tickets.history"),
            "after the history entries": fault_on("INSERT", "tickets.watchers"),
            "after the first event": fault_on(
                "INSERT", "tickets.outbox", when=routing_key_is("ticket.status_changed")
            ),
            "at the commit": COMMIT,
        },
    ),
    # (Un)watching is one statement (a watch on the unit of work's driver connection).
    "watch": Write(
        lambda s: s.call(OTHER, "PUT", f"{T1}/watchers/me"),
        200,
        (),
        {"at the commit": fault_at_commit("INSERT", "tickets.watchers")},
    ),
    "unwatch": Write(
        lambda s: s.call(DEV, "DELETE", f"{T1}/watchers/me"),
        204,
        (),
        {"at the commit": fault_at_commit("DELETE", "tickets.watchers")},
    ),
}


async def _scene(api: Any) -> Scene:
    api.projects.add("ATOM", ROLES)
    for _ in range(3):
        created = await api.create(DEV, "ATOM")
        assert created.status_code == 201, created.text
    scene = Scene(api, comment="")
    comment = await scene.call(DEV, "POST", f"{T1}/comments", json={"body": "First"})
    assert comment.status_code == 201, comment.text
    scene.comment = comment.json()["id"]
    deleted = await scene.call(LEAD, "DELETE", "/tickets/ATOM-2")
    assert deleted.status_code == 204, deleted.text
    return scene


@pytest.mark.parametrize("case", fault_cases(WRITES), ids=str)
async def test_a_fault_anywhere_in_a_write_leaves_nothing_of_it(
    tickets_api: Any, superuser_db: asyncpg.Connection, case: FaultCase[Scene]
) -> None:
    scene = await _scene(tickets_api)
    await case.assert_atomic(superuser_db, scene, tables=TABLES)
