from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from bugtracker_shared.inbox import advance_sequence, claim_event
from bugtracker_shared.rows import Columns
from sqlalchemy import Table, Text, delete, func, literal_column, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_notifications.application.ports import Keyset
from bugtracker_notifications.domain.notifications import Notification
from bugtracker_notifications.infrastructure.tables import former_members, notifications

_t = notifications


NOTIFICATIONS = Columns(Notification, notifications)
_notification = NOTIFICATIONS.from_row

# The PostgreSQL channel on which each committed notification is announced
# (infrastructure/feed.py listens on it; docs/adr/0036). Channels are database-wide.
CHANNEL = "bugtracker_notifications_created"


def notification_of_payload(payload: str) -> Notification:
    """The notification a NOTIFY payload announces: its row as `row_to_json` wrote it."""
    row = json.loads(payload)

    def optional_uuid(name: str) -> uuid.UUID | None:
        value = row[name]
        return uuid.UUID(value) if value is not None else None

    return Notification(
        id=uuid.UUID(row["id"]),
        user_id=uuid.UUID(row["user_id"]),
        type=row["type"],
        event_id=uuid.UUID(row["event_id"]),
        actor_id=optional_uuid("actor_id"),
        project_id=optional_uuid("project_id"),
        ticket_id=optional_uuid("ticket_id"),
        ticket_key=row["ticket_key"],
        summary=row["summary"],
        created_at=datetime.fromisoformat(row["created_at"]),
        read_at=datetime.fromisoformat(row["read_at"]) if row["read_at"] is not None else None,
        group_key=optional_uuid("group_key"),
    )


class SqlNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, items: Sequence[Notification]) -> None:
        """Insert, and announce each inserted row on `CHANNEL` in the same statement: the
        NOTIFY is part of the unit of work's transaction, delivered to every listening
        replica when it commits and never when it rolls back. The payload is the row as
        JSON; a summary is at most SUMMARY_MAX_CHARS characters (the domain cuts it), so
        it stays far below PostgreSQL's 8000-byte payload limit (docs/adr/0036).

        ON CONFLICT DO NOTHING without a target skips a row that would break either
        unique index: (event_id, user_id), an event handled again, and the partial one
        on (user_id, group_key), another event of the same bulk change handled first. A
        concurrent transaction inserting the same key makes this one wait for its
        outcome, so two replicas never both insert."""
        if not items:
            return
        added = (
            insert(_t)
            .values([NOTIFICATIONS.values(n) for n in items])
            .on_conflict_do_nothing()
            .returning(*_t.c)
            .cte("added")
        )
        payload = func.row_to_json(literal_column(added.name)).cast(Text)
        await self._session.execute(select(func.pg_notify(CHANNEL, payload)).select_from(added))

    async def list_for_user(
        self, user_id: uuid.UUID, *, unread_only: bool, after: Keyset | None, limit: int
    ) -> list[Notification]:
        query = select(_t).where(_t.c.user_id == user_id)
        if unread_only:
            query = query.where(_t.c.read_at.is_(None))
        if after is not None:
            query = query.where(
                tuple_(_t.c.created_at, _t.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(_t.c.created_at.desc(), _t.c.id.desc()).limit(limit)
        rows = (await self._session.execute(query)).mappings().all()
        return [_notification(row) for row in rows]

    async def count_unread(self, user_id: uuid.UUID) -> int:
        count = await self._session.scalar(
            select(func.count())
            .select_from(_t)
            .where(_t.c.user_id == user_id, _t.c.read_at.is_(None))
        )
        return int(count or 0)

    async def mark_read(
        self, user_id: uuid.UUID, notification_id: uuid.UUID, at: datetime
    ) -> Notification | None:
        row = (
            (
                await self._session.execute(
                    update(_t)
                    .where(_t.c.id == notification_id, _t.c.user_id == user_id)
                    .values(read_at=func.coalesce(_t.c.read_at, at))
                    .returning(*_t.c)
                )
            )
            .mappings()
            .first()
        )
        return _notification(row) if row is not None else None

    async def mark_all_read(self, user_id: uuid.UUID, at: datetime) -> int:
        result = await self._session.execute(
            update(_t).where(_t.c.user_id == user_id, _t.c.read_at.is_(None)).values(read_at=at)
        )
        return cast(CursorResult[Any], result).rowcount


class SqlInbox:
    def __init__(self, session: AsyncSession, table: Table, sequences: Table) -> None:
        self._session = session
        self._table = table
        self._sequences = sequences

    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        return await claim_event(self._session, self._table, event_id, event_type)

    async def advance(self, subject: str, sequence: int) -> bool:
        return await advance_sequence(self._session, self._sequences, subject, sequence)


class SqlFormerMembers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def left(self, project_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> None:
        await self._session.execute(
            insert(former_members)
            .values(project_id=project_id, user_id=user_id, left_at=at)
            .on_conflict_do_update(
                index_elements=[former_members.c.project_id, former_members.c.user_id],
                set_={"left_at": at},
            )
        )

    async def returned(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._session.execute(
            delete(former_members).where(
                former_members.c.project_id == project_id, former_members.c.user_id == user_id
            )
        )

    async def among(self, project_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not user_ids:
            return set()
        rows = await self._session.execute(
            select(former_members.c.user_id).where(
                former_members.c.project_id == project_id,
                former_members.c.user_id.in_(user_ids),
            )
        )
        return set(rows.scalars())
