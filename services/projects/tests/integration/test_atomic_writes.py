"""Every write of the projects service is one transaction: a fault after any of its
statements, or at its commit, leaves nothing of it behind (no project, no membership, no
version bump, no event), and the same request succeeds once the fault is gone.

The faults are real PostgreSQL errors, raised by a trigger the test installs as the
superuser on the table of the next statement; a deferred constraint trigger fails the
COMMIT itself (bugtracker_testkit). The statements of each write, in order, are
those of its use case (application/use_cases.py): every change of a project or of its
memberships locks the project row, writes, bumps the project's version and records one
event."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_testkit import FaultCase, Write, fault_at_commit, fault_cases, fault_on

pytestmark = pytest.mark.integration

TABLES = ("projects", "memberships", "outbox")
COMMIT = fault_at_commit("INSERT", "projects.outbox")


@dataclass
class Scene:
    """ATOM, owned by `owner`, with `member` a developer and `newcomer` not a member; OLD,
    archived; GONE, deleted."""

    api: Any
    owner: uuid.UUID
    member: uuid.UUID
    newcomer: uuid.UUID

    def call(self, method: str, path: str, **kwargs: Any) -> Awaitable[httpx.Response]:
        return self.api.client.request(  # type: ignore[no-any-return]
            method, f"/api/v1/projects{path}", headers=self.api.headers(self.owner), **kwargs
        )


# A change of the project row itself: its update, its event, then COMMIT.
PROJECT_FAULTS = {
    "after the project update": fault_on("INSERT", "projects.outbox"),
    "at the commit": COMMIT,
}
# A change of a membership: the membership's statement, the project's version bump, its
# event, then COMMIT.
MEMBER_FAULTS = {
    "after the membership write": fault_on("UPDATE", "projects.projects"),
    "after the project update": fault_on("INSERT", "projects.outbox"),
    "at the commit": COMMIT,
}
WRITES: dict[str, Write[Scene]] = {
    # The project (in a savepoint, for a concurrent create of its key), its owner, its
    # event.
    "create": Write(
        lambda s: s.call("POST", "", json={"key": "NEW", "name": "New"}),
        201,
        ("project.created",),
        {
            "after the project insert": fault_on("INSERT", "projects.memberships"),
            "after the owner's membership": fault_on("INSERT", "projects.outbox"),
            "at the commit": COMMIT,
        },
    ),
    "update": Write(
        lambda s: s.call("PATCH", "/ATOM", json={"name": "Renamed", "description": "Now"}),
        200,
        ("project.updated",),
        PROJECT_FAULTS,
    ),
    "add member": Write(
        lambda s: s.call(
            "POST", "/ATOM/members", json={"user_id": str(s.newcomer), "role": "reporter"}
        ),
        201,
        ("project.member_added",),
        MEMBER_FAULTS,
    ),
    "change role": Write(
        lambda s: s.call("PATCH", f"/ATOM/members/{s.member}", json={"role": "maintainer"}),
        200,
        ("project.member_role_changed",),
        MEMBER_FAULTS,
    ),
    "remove member": Write(
        lambda s: s.call("DELETE", f"/ATOM/members/{s.member}"),
        204,
        ("project.member_removed",),
        MEMBER_FAULTS,
    ),
    "archive": Write(
        lambda s: s.call("POST", "/ATOM/archive"), 200, ("project.archived",), PROJECT_FAULTS
    ),
    "unarchive": Write(
        lambda s: s.call("POST", "/OLD/unarchive"), 200, ("project.updated",), PROJECT_FAULTS
    ),
    "delete": Write(lambda s: s.call("DELETE", "/ATOM"), 204, ("project.deleted",), PROJECT_FAULTS),
    "restore": Write(
        lambda s: s.call("POST", "/GONE/restore"), 200, ("project.updated",), PROJECT_FAULTS
    ),
}


async def _scene(api: Any) -> Scene:
    scene = Scene(api, api.auth.add("Olive"), api.auth.add("Dave"), api.auth.add("Nina"))
    for key in ("ATOM", "OLD", "GONE"):
        await api.create_project(scene.owner, key)
    setup = [
        await scene.call(
            "POST", "/ATOM/members", json={"user_id": str(scene.member), "role": "developer"}
        ),
        await scene.call("POST", "/OLD/archive"),
        await scene.call("DELETE", "/GONE"),
    ]
    assert [r.status_code for r in setup] == [201, 200, 204], [r.text for r in setup]
    return scene


@pytest.mark.parametrize("case", fault_cases(WRITES), ids=str)
async def test_a_fault_anywhere_in_a_write_leaves_nothing_of_it(
    projects_api: Any, superuser_db: asyncpg.Connection, case: FaultCase[Scene]
) -> None:
    scene = await _scene(projects_api)
    await case.assert_atomic(superuser_db, scene, tables=TABLES)
