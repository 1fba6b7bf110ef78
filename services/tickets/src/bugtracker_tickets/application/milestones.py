"""Milestones of a project (docs/adr/0039): create, read, list, change, delete.

Members read a project's milestones; maintainers and owners (PROJECT_UPDATE) change them.
Each change bumps the milestone's version and writes one `milestone.*` event to the
outbox in its transaction. A milestone's progress (`total`, `done`) is the database's,
kept by a trigger on tickets; nothing here counts tickets.

Deleting a milestone that many tickets name must not hold the request: the DELETE marks
it deleted (it disappears from reads and can no longer be set on a ticket), writes
`milestone.deleted` and clears the first DELETE_BATCH tickets in its transaction; the
rest are cleared after the commit by `clear_deleted_milestones`, a batch per transaction,
which `keep_clearing` runs in the background. Its state is the database's (deleted
milestones some ticket still names), so a restart loses nothing, and replicas share the
work (the tickets of a batch are locked, skipping those another holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from bugtracker_shared.etags import check_version
from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.pagination import Listing, decode_cursor, encode_cursor
from bugtracker_shared.permissions import Permission
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import ProjectDirectory, UnitOfWork
from bugtracker_tickets.application.ticket_events import SERVICE, record
from bugtracker_tickets.application.use_cases import SYSTEM_ACTOR
from bugtracker_tickets.domain.errors import MilestoneNotFoundError, ProjectNotFoundError
from bugtracker_tickets.domain.planning import Milestone, MilestoneState
from bugtracker_tickets.domain.tickets import (
    KEEP,
    HistoryEntry,
    Keep,
    ProjectAccess,
    as_json,
    project_ref,
    visible,
)

logger = logging.getLogger("bugtracker.tickets.milestones")

# Tickets cleared of a deleted milestone per transaction (the DELETE's own included).
DELETE_BATCH = 500
# Deleted milestones `clear_deleted_milestones` takes on at a time.
MILESTONES_PER_PASS = 20
# How often the background job looks for work nobody woke it for (another replica's
# deletions, work left by a restart), and the longest it backs off after an error.
CLEAR_INTERVAL_SECONDS = 30.0
FIRST_BACKOFF_SECONDS = 1.0

# The actor of the batches cleared in the background.
SYSTEM = Principal(user_id=SYSTEM_ACTOR, session_id=SYSTEM_ACTOR, role="system", token="")

StateFilter = Literal["open", "closed", "all"]
_STATES: dict[str, tuple[MilestoneState, ...]] = {
    "open": (MilestoneState.OPEN,),
    "closed": (MilestoneState.CLOSED,),
    "all": (MilestoneState.OPEN, MilestoneState.CLOSED),
}


@dataclass(frozen=True)
class NewMilestone:
    name: str
    description: str = ""
    due_date: date | None = None


@dataclass(frozen=True)
class MilestonePatch:
    """The fields to change; KEEP leaves one as it is (`due_date=None` clears it)."""

    name: str | Keep = KEEP
    description: str | Keep = KEEP
    due_date: date | Keep | None = KEEP
    state: MilestoneState | Keep = KEEP

    def apply_to(self, milestone: Milestone) -> dict[str, dict[str, Any]]:
        """Change `milestone`; what changed, as `{field: {from, to}}`."""
        changes: dict[str, dict[str, Any]] = {}
        for name in ("name", "description", "due_date", "state"):
            new = getattr(self, name)
            old = getattr(milestone, name)
            if new is KEEP or new == old:
                continue
            changes[name] = {"from": as_json(old), "to": as_json(new)}
            setattr(milestone, name, new)
        return changes


def milestone_event(
    name: str, milestone: Milestone, principal: Principal, **extra: Any
) -> CloudEvent:
    """Event `name` of the milestone after the change (`data`: its event fields and
    `extra`), ordered by its version."""
    return new_event(
        name,
        service=SERVICE,
        subject=milestone.id,
        sequence=milestone.version,
        data=EVENT_DATA[name](**milestone.event_fields(), **extra),
        actor_id=principal.user_id,
        correlation_id=current_request_id(),
    )


@dataclass
class MilestoneUseCases:
    uow: Callable[[], UnitOfWork]
    projects: ProjectDirectory
    # Set when a deletion left tickets to clear: wakes `keep_clearing` at once.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- access --------------------------------------------------------------------------

    async def _access(self, principal: Principal, ref: str) -> ProjectAccess:
        return visible(await self.projects.access(project_ref(ref), principal))

    async def _visible(
        self, principal: Principal, milestone_id: uuid.UUID
    ) -> tuple[Milestone, ProjectAccess]:
        """The live milestone and the caller's access to its project; 404 when either
        does not exist for the caller."""
        async with self.uow() as uow:
            milestone = await uow.milestones.get(milestone_id)
        if milestone is None or milestone.deleted_at is not None:
            raise MilestoneNotFoundError()
        try:
            access = await self._access(principal, str(milestone.project_id))
        except ProjectNotFoundError as exc:
            raise MilestoneNotFoundError() from exc
        return milestone, access

    async def _writable(self, principal: Principal, milestone_id: uuid.UUID) -> None:
        _, access = await self._visible(principal, milestone_id)
        access.require(Permission.PROJECT_UPDATE)
        access.require_writable()

    @staticmethod
    async def _locked(uow: UnitOfWork, milestone_id: uuid.UUID) -> Milestone:
        milestone = await uow.milestones.get(milestone_id, for_update=True)
        if milestone is None or milestone.deleted_at is not None:
            raise MilestoneNotFoundError()
        return milestone

    # -- create and read ----------------------------------------------------------------

    async def create_milestone(
        self, principal: Principal, project: str, new: NewMilestone
    ) -> Milestone:
        access = await self._access(principal, project)
        access.require(Permission.PROJECT_UPDATE)
        access.require_writable()
        now = datetime.now(UTC)
        milestone = Milestone(
            id=uuid.uuid4(),
            project_id=access.project_id,
            name=new.name,
            description=new.description,
            due_date=new.due_date,
            state=MilestoneState.OPEN,
            created_at=now,
            updated_at=now,
        )
        async with self.uow() as uow:
            await uow.milestones.add(milestone)
            await uow.outbox.add(milestone_event("milestone.created", milestone, principal))
            await uow.commit()
        return milestone

    async def get_milestone(self, principal: Principal, milestone_id: uuid.UUID) -> Milestone:
        milestone, _ = await self._visible(principal, milestone_id)
        return milestone

    async def list_milestones(
        self,
        principal: Principal,
        project: str,
        *,
        state: StateFilter = "open",
        limit: int = 20,
        cursor: str | None = None,
    ) -> Listing[Milestone]:
        """Live milestones by due date (none last), name, id."""
        access = await self._access(principal, project)
        after = decode_cursor(cursor, 3) if cursor else None
        async with self.uow() as uow:
            found, next_after = await uow.milestones.list(
                access.project_id, states=_STATES[state], after=after, limit=limit
            )
        return Listing(found, encode_cursor(next_after) if next_after else None)

    # -- changes ------------------------------------------------------------------------

    async def update_milestone(
        self,
        principal: Principal,
        milestone_id: uuid.UUID,
        patch: MilestonePatch,
        *,
        expected_version: int | None = None,
    ) -> Milestone:
        await self._writable(principal, milestone_id)
        async with self.uow() as uow:
            milestone = await self._locked(uow, milestone_id)
            check_version(milestone.version, expected_version)
            changes = patch.apply_to(milestone)
            if not changes:
                return milestone
            milestone.touch(datetime.now(UTC))
            await uow.milestones.update(milestone)
            await uow.outbox.add(
                milestone_event("milestone.updated", milestone, principal, changes=changes)
            )
            await uow.commit()
        return milestone

    async def delete_milestone(self, principal: Principal, milestone_id: uuid.UUID) -> None:
        """Mark it deleted and clear its first batch of tickets; the rest are cleared in
        the background (`keep_clearing`), woken here when tickets remain."""
        await self._writable(principal, milestone_id)
        async with self.uow() as uow:
            milestone = await self._locked(uow, milestone_id)
            now = datetime.now(UTC)
            milestone.deleted_at = now
            milestone.touch(now)
            await uow.milestones.update(milestone)
            await uow.outbox.add(milestone_event("milestone.deleted", milestone, principal))
            cleared = await _clear_batch(uow, milestone_id, principal)
            await uow.commit()
        if cleared >= DELETE_BATCH:
            self.wake.set()

    # -- clearing deleted milestones ------------------------------------------------------

    async def clear_deleted_milestones(self) -> int:
        """Clear every ticket of deleted milestones, DELETE_BATCH tickets per transaction,
        then purge the deleted milestones no ticket names any more; how many tickets were
        cleared. Tickets another transaction holds are left for the next run."""
        cleared = 0
        while True:
            async with self.uow() as uow:
                pending = await uow.milestones.deleted_with_tickets(limit=MILESTONES_PER_PASS)
            this_pass = 0
            for milestone_id in pending:
                while True:
                    async with self.uow() as uow:
                        batch = await _clear_batch(uow, milestone_id, SYSTEM)
                        await uow.commit()
                    this_pass += batch
                    if batch < DELETE_BATCH:
                        break
            cleared += this_pass
            # Nothing pending, or only tickets another replica is clearing right now.
            if not pending or this_pass == 0:
                break
        async with self.uow() as uow:
            purged = await uow.milestones.purge_cleared()
            await uow.commit()
        if cleared or purged:
            logger.info("cleared %d tickets of deleted milestones, purged %d", cleared, purged)
        return cleared

    async def keep_clearing(
        self,
        *,
        interval: float = CLEAR_INTERVAL_SECONDS,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
    ) -> None:
        """The service's background job: `clear_deleted_milestones`, then wait for a
        deletion that left tickets (`wake`) or `interval` seconds; after an error, log it
        and retry after a backoff that doubles up to `interval`. Runs until cancelled."""
        backoff = first_backoff
        while True:
            self.wake.clear()
            try:
                await self.clear_deleted_milestones()
            except Exception:
                logger.exception("clearing deleted milestones failed; retry in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, first_backoff), interval)
                continue
            backoff = first_backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)


async def _clear_batch(uow: UnitOfWork, milestone_id: uuid.UUID, actor: Principal) -> int:
    """Up to DELETE_BATCH tickets of the milestone lose it, each with its history entry,
    a version bump and a `ticket.updated` event by `actor`; how many."""
    batch = await uow.tickets.in_milestone(milestone_id, limit=DELETE_BATCH)
    if not batch:
        return 0
    now = datetime.now(UTC)
    changes = {"milestone_id": {"from": str(milestone_id), "to": None}}
    for ticket in batch:
        ticket.milestone_id = None
        ticket.touch(now)
        await uow.tickets.update(ticket)
    await uow.history.add(
        [
            HistoryEntry(ticket.id, now, actor.user_id, "milestone_id", str(milestone_id), None)
            for ticket in batch
        ]
    )
    for ticket in batch:
        await record(uow, "ticket.updated", ticket, actor, changes=changes)
    return len(batch)
