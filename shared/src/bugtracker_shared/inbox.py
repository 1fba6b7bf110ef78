"""Inbox: the ids of events a consumer has already applied, for exactly-once effects."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid, func
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


async def claim_event(session: AsyncSession, table: Table, event_id: uuid.UUID, type_: str) -> bool:
    """Record the event in the caller's transaction; False when it was already applied."""
    result = await session.execute(
        insert(table)
        .values(event_id=event_id, event_type=type_)
        .on_conflict_do_nothing(index_elements=[table.c.event_id])
        .returning(table.c.event_id)
    )
    return result.first() is not None
