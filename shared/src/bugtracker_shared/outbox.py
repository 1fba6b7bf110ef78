"""Transactional outbox: events are rows written in the business transaction, and a relay
publishes committed rows with publisher confirms, so nothing is lost while the broker is
away and nothing is published for a transaction that rolled back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import Broker

logger = logging.getLogger("bugtracker.outbox")


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("position", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("aggregate_id", String(64), nullable=False),
        Column("routing_key", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
    )
    Index(
        "ix_outbox_unsent",
        table.c.position,
        postgresql_where=table.c.sent_at.is_(None),
    )
    return table


class OutboxWriter:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session = session
        self._table = table

    async def add(self, event: CloudEvent) -> None:
        await self._session.execute(
            insert(self._table).values(
                event_id=event.id,
                aggregate_id=event.subject,
                routing_key=event.name,
                payload=event.model_dump(mode="json", exclude_none=True),
            )
        )


class OutboxRelay:
    """Publishes committed outbox rows in order; several replicas share the work through
    `FOR UPDATE SKIP LOCKED`."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        broker: Broker,
        *,
        batch_size: int = 100,
        poll_seconds: float = 0.5,
    ) -> None:
        self._engine = engine
        self._table = table
        self._broker = broker
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out at once."""
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                published = await self.relay_once() if self._broker.is_ready else 0
                backoff = 0.2
            except Exception as exc:
                logger.warning("outbox relay failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == self._batch_size:
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many went out."""
        t = self._table
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(
                        t.c.position, t.c.event_id, t.c.aggregate_id, t.c.routing_key, t.c.payload
                    )
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.position)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0

            async def publish_in_order(
                aggregate_rows: Sequence[Any],
            ) -> None:
                for row in aggregate_rows:
                    payload: dict[str, Any] = row.payload
                    await self._broker.publish(
                        row.routing_key,
                        json.dumps(payload, separators=(",", ":")).encode(),
                        message_id=str(row.event_id),
                        correlation_id=payload.get("correlationid"),
                    )

            by_aggregate = [
                list(group)
                for _, group in itertools.groupby(
                    sorted(rows, key=lambda r: (r.aggregate_id, r.position)),
                    key=lambda r: r.aggregate_id,
                )
            ]
            # Confirms are awaited together across aggregates; within one aggregate,
            # events go out one after another to keep their order.
            await asyncio.gather(*(publish_in_order(group) for group in by_aggregate))
            await conn.execute(
                update(t)
                .where(t.c.position.in_([r.position for r in rows]))
                .values(sent_at=datetime.now(UTC))
            )
        return len(rows)
