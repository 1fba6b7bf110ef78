"""Inbox: the ids of events a consumer has already applied, for exactly-once effects, and
the last applied `sequence` of each subject, so an event older than what was applied is
dropped instead of undoing newer state."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def subject_sequences_table(metadata: MetaData) -> Table:
    return Table(
        "subject_sequences",
        metadata,
        Column("subject", String(64), primary_key=True),
        Column("sequence", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def claim_event(session: AsyncSession, table: Table, event_id: uuid.UUID, type_: str) -> bool:
    """Record the event in the caller's transaction; False when it was already applied."""
    result = await session.execute(
        insert(table)
        .values(event_id=event_id, event_type=type_)
        .on_conflict_do_nothing(index_elements=[table.c.event_id])
        .returning(table.c.event_id)
    )
    return result.first() is not None


async def advance_sequence(
    session: AsyncSession, table: Table, subject: str, sequence: int
) -> bool:
    """Move the subject's last applied sequence up to `sequence` in the caller's
    transaction; False when a newer one was applied already (the event is stale).

    Equal sequences pass: one change may emit several events with the aggregate's same
    version (`ticket.created` and `ticket.assigned`). The row stays locked until the
    transaction ends, so two consumers of one subject cannot interleave."""
    stmt = insert(table).values(subject=subject, sequence=sequence)
    result = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.subject],
            set_={"sequence": stmt.excluded.sequence, "updated_at": func.now()},
            where=table.c.sequence <= stmt.excluded.sequence,
        ).returning(table.c.subject)
    )
    return result.first() is not None
