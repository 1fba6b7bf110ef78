"""The tickets service's own view of projects and memberships (ADR 0023).

Fed by the `project.*` events on the service's own quorum queue, seeded at start from
the projects service's `/internal/memberships` snapshot, and kept in this service's
schema (`project_view`, `member_view`), so that who may do what in a project is decided
here in one indexed statement instead of an HTTP call to projects on every request.

Order: every change to a project or its memberships bumps the project's version, which
is the events' `sequence` and the snapshot's `version`. A change is applied only when its
version is at least the stored one, so a late or redelivered event, or a snapshot older
than an event already applied, never undoes newer state; applying the same change twice
is harmless (every write sets state, none adds to it).

Trust: the view answers only while it is seeded, the broker connection is up and the
events arrive promptly (an event applied more than `lag_seconds` after it happened marks
the view as lagging for `LAG_HOLD_SECONDS`). Otherwise, and whenever the view does not
grant access (an unknown project, a caller who is not a member), the projects service is
asked, as before: a lagging view can only be stale for `lag_seconds`, and a denial is
always the owner's word (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from bugtracker_shared.db import driver_connection
from bugtracker_shared.event_schemas import MembershipData, ProjectCreated, ProjectData
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.internal import HEADER as INTERNAL_TOKEN_HEADER
from bugtracker_shared.messaging import Broker
from bugtracker_shared.permissions import ProjectRole, permissions_for
from bugtracker_shared.tokens import Principal
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_tickets.application.ports import MemberInfo, ProjectDirectory
from bugtracker_tickets.domain.tickets import ProjectAccess

logger = logging.getLogger("bugtracker.tickets.memberships")

QUEUE = "tickets.memberships"
PROJECT_EVENTS = (
    "project.created",
    "project.updated",
    "project.archived",
    "project.deleted",
    "project.member_added",
    "project.member_role_changed",
    "project.member_removed",
)
LAG_HOLD_SECONDS = 5.0
SNAPSHOT_PAGE = 500

# Insert the project, or move its state and version forward; no row back when the stored
# version is newer (the change is stale).
_CLAIM_PROJECT = """
INSERT INTO tickets.project_view AS p (id, key, archived, deleted, version, deleted_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 THEN $6::timestamptz END)
ON CONFLICT (id) DO UPDATE
SET key = EXCLUDED.key, archived = EXCLUDED.archived, deleted = EXCLUDED.deleted,
    version = EXCLUDED.version,
    deleted_at = CASE WHEN EXCLUDED.deleted THEN COALESCE(p.deleted_at, EXCLUDED.deleted_at) END
WHERE p.version <= EXCLUDED.version
RETURNING p.id
"""
# A membership change names the project but not its state: only the version moves (a
# project first heard of through it is taken as live, as a new project is).
_CLAIM_VERSION = """
INSERT INTO tickets.project_view AS p (id, key, archived, deleted, version)
VALUES ($1, $2, false, false, $3)
ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version
WHERE p.version <= EXCLUDED.version
RETURNING p.id
"""
_SET_MEMBER = """
INSERT INTO tickets.member_view (project_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role
"""
_REMOVE_MEMBER = "DELETE FROM tickets.member_view WHERE project_id = $1 AND user_id = $2"
_REMOVE_MEMBERS = "DELETE FROM tickets.member_view WHERE project_id = $1"

_ACCESS_BY_ID = """
SELECT p.id, p.key, p.archived, m.role
FROM tickets.project_view p
LEFT JOIN tickets.member_view m ON m.project_id = p.id AND m.user_id = $2
WHERE p.id = $1 AND NOT p.deleted
"""
_ACCESS_BY_KEY = _ACCESS_BY_ID.replace("WHERE p.id = $1", "WHERE p.key = $1")
_IS_MEMBER = """
SELECT 1 FROM tickets.member_view m JOIN tickets.project_view p ON p.id = m.project_id
WHERE m.project_id = $1 AND m.user_id = $2 AND NOT p.deleted
"""
_MEMBER_PROJECTS = """
SELECT m.project_id FROM tickets.member_view m
JOIN tickets.project_view p ON p.id = m.project_id
WHERE m.user_id = $1 AND NOT p.deleted
"""
_ALL_PROJECTS = "SELECT id FROM tickets.project_view WHERE NOT deleted"


def granted(
    project_id: uuid.UUID, key: str, archived: bool, role: str | None, caller: Principal
) -> ProjectAccess | None:
    """The access a view row grants the caller: a member's role, or an admin's reach;
    None for anyone else (the view never denies on its own: ViewedProjectDirectory)."""
    if role is None and not caller.is_admin:
        return None
    member_role = ProjectRole(role) if role else None
    return ProjectAccess(
        project_id=project_id,
        project_key=key,
        archived=archived,
        role=member_role,
        permissions=permissions_for(member_role, is_admin=caller.is_admin),
    )


class MembershipView:
    def __init__(
        self,
        engine: AsyncEngine,
        broker: Broker,
        projects: httpx.AsyncClient,
        internal_token: str,
        *,
        lag_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._projects = projects
        self._internal_token = internal_token
        self._lag_seconds = lag_seconds
        self._clock = clock
        self._seeded = False
        self._lagging_until = 0.0
        # What the service does when someone leaves a project (unwatch, unassign).
        self.on_member_removed: (
            Callable[[uuid.UUID, uuid.UUID, uuid.UUID | None], Awaitable[object]] | None
        ) = None

    @property
    def trusted(self) -> bool:
        return self._seeded and self._broker.is_ready and self._clock() >= self._lagging_until

    # -- fed by events and the snapshot ------------------------------------------------

    async def handle_event(self, event: CloudEvent) -> None:
        """Apply one `project.*` event (the consumer of QUEUE)."""
        lag = (datetime.now(UTC) - event.time).total_seconds()
        if lag > self._lag_seconds:
            self._lagging_until = self._clock() + LAG_HOLD_SECONDS
            logger.warning("membership event %s applied %.1f s late", event.id, lag)
        if event.name.startswith("project.member_"):
            await self._member_changed(event)
            return
        # The project after the change: what every `project.*` event's data shares (the
        # consumer checked the whole of it against the event's own model already).
        project = ProjectData.model_validate(event.data)
        async with driver_connection(self._engine) as conn, conn.transaction():
            claimed = await conn.fetchval(
                _CLAIM_PROJECT,
                project.id,
                project.key,
                project.archived,
                project.deleted,
                event.sequence,
                event.time,
            )
            if claimed is not None and event.name == "project.created":
                owner = ProjectCreated.model_validate(event.data).owner_id
                await conn.execute(_SET_MEMBER, project.id, owner, ProjectRole.OWNER.value)

    async def _member_changed(self, event: CloudEvent) -> None:
        member = MembershipData.model_validate(event.data)
        project_id, user_id = member.project_id, member.user_id
        removed = event.name == "project.member_removed"
        async with driver_connection(self._engine) as conn, conn.transaction():
            claimed = await conn.fetchval(
                _CLAIM_VERSION, project_id, member.project_key, event.sequence
            )
            if claimed is None:
                return
            if removed:
                await conn.execute(_REMOVE_MEMBER, project_id, user_id)
            else:
                await conn.execute(_SET_MEMBER, project_id, user_id, member.role)
        if removed and self.on_member_removed is not None:
            # After the view's commit: a failure here nacks the event, and its redelivery
            # (same version, claimed again) runs this again.
            actor = uuid.UUID(event.actorid) if event.actorid else None
            await self.on_member_removed(project_id, user_id, actor)

    async def seed(self) -> None:
        """Load the projects service's snapshot, page by page; the view is trusted from
        the end of the first complete load on."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": SNAPSHOT_PAGE}
            if after is not None:
                params["after"] = after
            response = await self._projects.get(
                "/internal/memberships",
                params=params,
                headers={INTERNAL_TOKEN_HEADER: self._internal_token},
            )
            response.raise_for_status()
            page = response.json()
            async with driver_connection(self._engine) as conn, conn.transaction():
                for project in page["items"]:
                    await self._load(conn, project)
            after = page["next_after"]
            if after is None:
                break
        self._seeded = True
        logger.info("membership view seeded")

    @staticmethod
    async def _load(conn: asyncpg.Connection, project: dict[str, Any]) -> None:
        project_id = uuid.UUID(project["id"])
        claimed = await conn.fetchval(
            _CLAIM_PROJECT,
            project_id,
            project["key"],
            project["archived"],
            project["deleted"],
            project["version"],
            # The snapshot does not say when: from now on, which only purges later.
            datetime.now(UTC),
        )
        if claimed is None:  # an event newer than the snapshot was applied already
            return
        await conn.execute(_REMOVE_MEMBERS, project_id)
        await conn.executemany(
            _SET_MEMBER,
            [(project_id, uuid.UUID(m["user_id"]), m["role"]) for m in project["members"]],
        )

    async def seed_until_done(self) -> None:
        """The start-up job: once the consumer is consuming (so no change can fall between
        the snapshot and the events), load the snapshot, retrying while projects is away."""
        await self._broker.wait_connected()
        delay = 0.5
        while True:
            try:
                await self.seed()
                return
            except (httpx.HTTPError, OSError, asyncpg.PostgresError) as exc:
                logger.warning("membership snapshot failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- read --------------------------------------------------------------------------

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        """The caller's access as the view has it; None when the view does not grant it."""
        try:
            ref: uuid.UUID | str = uuid.UUID(project_ref)
            query = _ACCESS_BY_ID
        except ValueError:
            ref, query = project_ref.upper(), _ACCESS_BY_KEY
        async with driver_connection(self._engine) as conn:
            row = await conn.fetchrow(query, ref, caller.user_id)
        if row is None:
            return None
        return granted(row["id"], row["key"], row["archived"], row["role"], caller)

    async def is_member(self, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        async with driver_connection(self._engine) as conn:
            return await conn.fetchval(_IS_MEMBER, project_id, user_id) is not None

    async def visible_projects(self, caller: Principal) -> list[uuid.UUID]:
        async with driver_connection(self._engine) as conn:
            if caller.is_admin:
                rows = await conn.fetch(_ALL_PROJECTS)
            else:
                rows = await conn.fetch(_MEMBER_PROJECTS, caller.user_id)
        return [row[0] for row in rows]


class ViewedProjectDirectory:
    """The view where it is trusted and grants access; the projects service otherwise."""

    def __init__(self, view: MembershipView, projects: ProjectDirectory) -> None:
        self._view = view
        self._projects = projects

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        if self._view.trusted:
            found = await self._view.access(project_ref, caller)
            if found is not None:
                return found
        return await self._projects.access(project_ref, caller)

    async def is_member(self, project_id: uuid.UUID, user_id: uuid.UUID, caller: Principal) -> bool:
        if self._view.trusted and await self._view.is_member(project_id, user_id):
            return True
        return await self._projects.is_member(project_id, user_id, caller)

    async def members(self, project_id: uuid.UUID, caller: Principal) -> list[MemberInfo]:
        # Names and e-mails (for mentions) are not in the view: comments ask projects.
        return await self._projects.members(project_id, caller)

    async def visible_projects(self, caller: Principal) -> list[uuid.UUID]:
        if self._view.trusted:
            return await self._view.visible_projects(caller)
        return await self._projects.visible_projects(caller)
