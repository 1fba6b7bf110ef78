"""A project's activity feed (docs/adr/0046): built from events, read newest first.

The consumer of the service's queue `tickets.activity` hands each event to
`ActivityUseCases.handle_event`, which stores the one entry the event makes (if any),
keyed by the event's id: a redelivered event finds its entry there and adds none. The
feed is therefore a little behind the changes it shows (an event's trip through the
outbox relay and the broker).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.pagination import InvalidCursorError, Listing, decode_cursor
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.domain.activity import ActivityEntry, activity_of
from bugtracker_tickets.domain.tickets import RESTORE_WINDOW, ProjectAccess

PURGE_INTERVAL_SECONDS = 3600.0

logger = logging.getLogger("bugtracker.tickets.activity")

# Where a page ends: the last entry's (at, id), the feed's order newest first.
Position = tuple[datetime, int]


class ActivityLog(Protocol):
    """Where the feed's entries are kept."""

    async def add(self, entry: ActivityEntry) -> bool:
        """Store the entry unless one of its event is stored already; whether it was."""
        ...

    async def page(
        self, project_id: uuid.UUID, *, after: Position | None, limit: int
    ) -> list[ActivityEntry]:
        """Up to `limit` entries of the project, newest first, after `after`; entries of
        tickets that are deleted now are left out."""
        ...

    async def purge_deleted_projects(self, deleted_before: datetime) -> int:
        """Remove the entries of projects deleted before then; how many."""
        ...


class ProjectAccessCheck(Protocol):
    """Who may see a project: TicketUseCases.project_access, as every project resource."""

    async def project_access(self, principal: Principal, project_ref: str) -> ProjectAccess:
        """The caller's access; ProjectNotFoundError (404) for whoever may not see it."""
        ...


def position_cursor(entry: ActivityEntry) -> list[object]:
    return [entry.at.isoformat(), entry.id]


def decode_position(cursor: str) -> Position:
    moment, ident = decode_cursor(cursor, 2)
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise InvalidCursorError("The cursor is not valid.")
    try:
        at = datetime.fromisoformat(str(moment))
    except ValueError as exc:
        raise InvalidCursorError("The cursor is not valid.") from exc
    if at.tzinfo is None:
        raise InvalidCursorError("The cursor is not valid.")
    return at, ident


@dataclass
class ActivityUseCases:
    log: ActivityLog
    tickets: ProjectAccessCheck

    async def handle_event(self, event: CloudEvent) -> None:
        """The consumer of the feed's queue: at most one entry per event, once."""
        entry = activity_of(event)
        if entry is not None:
            await self.log.add(entry)

    async def project_activity(
        self, principal: Principal, project_ref: str, *, limit: int, cursor: str | None
    ) -> Listing[ActivityEntry]:
        """The project's feed, newest first; 404 for whoever may not see the project."""
        access = await self.tickets.project_access(principal, project_ref)
        after = decode_position(cursor) if cursor else None
        rows = await self.log.page(access.project_id, after=after, limit=limit + 1)
        return Listing.from_overfetch(rows, limit, position_cursor)

    async def purge_deleted(self, now: datetime | None = None) -> int:
        """Entries of projects deleted longer ago than the restore window, as their
        tickets are purged (TicketUseCases.purge_expired)."""
        purged = await self.log.purge_deleted_projects((now or datetime.now(UTC)) - RESTORE_WINDOW)
        if purged:
            logger.info("purged %d activity entries of deleted projects", purged)
        return purged

    async def keep_purging(self, *, interval: float = PURGE_INTERVAL_SECONDS) -> None:
        """The background job: `purge_deleted` every `interval` seconds (any replica)."""
        while True:
            try:
                await self.purge_deleted()
            except Exception:
                logger.exception("purging activity failed; retry in %.0f s", interval)
            await asyncio.sleep(interval)
