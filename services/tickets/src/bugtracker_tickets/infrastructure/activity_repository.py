"""The activity feed's entries in `tickets.activity` (docs/adr/0046).

Each write is one statement and each read one statement, on the driver connection
(autocommit): an entry is written by the consumer alone, keyed by its event's id, so a
redelivered event inserts nothing (`ON CONFLICT DO NOTHING`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from bugtracker_shared.db import driver_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_tickets.application.activity import Position
from bugtracker_tickets.domain.activity import ActivityEntry

_INSERT = """
INSERT INTO tickets.activity
    (event_id, project_id, at, actor_id, kind, ticket_id, ticket_key, summary)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""
# Newest first on the index (project_id, at DESC, id DESC); entries of a ticket that is
# deleted now (or purged) are left out.
_PAGE = """
SELECT a.id, a.event_id, a.project_id, a.at, a.actor_id, a.kind, a.ticket_id,
       a.ticket_key, a.summary
FROM tickets.activity a
WHERE a.project_id = $1 {after}
  AND (a.ticket_id IS NULL OR EXISTS (
      SELECT 1 FROM tickets.tickets t WHERE t.id = a.ticket_id AND t.deleted_at IS NULL))
ORDER BY a.at DESC, a.id DESC
LIMIT $2
"""
_FIRST_PAGE = _PAGE.format(after="")
_NEXT_PAGE = _PAGE.format(after="AND (a.at, a.id) < ($3, $4)")
_PURGE_DELETED_PROJECTS = """
DELETE FROM tickets.activity a
USING tickets.project_view p
WHERE p.id = a.project_id AND p.deleted AND p.deleted_at < $1
"""


def _entry(row: asyncpg.Record) -> ActivityEntry:
    return ActivityEntry(
        id=row["id"],
        event_id=row["event_id"],
        project_id=row["project_id"],
        at=row["at"],
        actor_id=row["actor_id"],
        kind=row["kind"],
        ticket_id=row["ticket_id"],
        ticket_key=row["ticket_key"],
        summary=row["summary"],
    )


class SqlActivityLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, entry: ActivityEntry) -> bool:
        async with driver_connection(self._engine) as conn:
            inserted = await conn.fetchval(
                _INSERT,
                entry.event_id,
                entry.project_id,
                entry.at,
                entry.actor_id,
                entry.kind,
                entry.ticket_id,
                entry.ticket_key,
                entry.summary,
            )
        return inserted is not None

    async def page(
        self, project_id: uuid.UUID, *, after: Position | None, limit: int
    ) -> list[ActivityEntry]:
        async with driver_connection(self._engine) as conn:
            if after is None:
                rows = await conn.fetch(_FIRST_PAGE, project_id, limit)
            else:
                rows = await conn.fetch(_NEXT_PAGE, project_id, limit, after[0], after[1])
        return [_entry(row) for row in rows]

    async def purge_deleted_projects(self, deleted_before: datetime) -> int:
        async with driver_connection(self._engine) as conn:
            status = await conn.execute(_PURGE_DELETED_PROJECTS, deleted_before)
        return int(status.split()[-1])
