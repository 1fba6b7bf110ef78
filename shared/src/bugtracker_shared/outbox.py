"""Transactional outbox: events are rows written in the business transaction, and a relay
publishes committed rows with publisher confirms, so nothing is lost while the broker is
away and nothing is published for a transaction that rolled back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
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
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from bugtracker_shared.db import session_driver
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import Broker
from bugtracker_shared.metrics import (
    EVENTS_PUBLISHED,
    EVENTS_UNROUTABLE,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
)
from bugtracker_shared.tracing import publish_span

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


class OutboxSettings(BaseSettings):
    """The relay's knobs, the same for every service (`BUGTRACKER_OUTBOX_*`)."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_OUTBOX_", extra="ignore")

    batch_size: int = 100
    poll_seconds: float = 0.5
    retention_days: float = 7.0
    prune_interval_seconds: float = 600.0
    prune_batch_size: int = 10_000


class OutboxWriter:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session = session
        self._table = table
        self._insert = (
            f"INSERT INTO {table.fullname} "  # noqa: S608 (our own table's name)
            "(event_id, aggregate_id, routing_key, payload) VALUES ($1, $2, $3, $4::jsonb)"
        )

    async def add(self, event: CloudEvent) -> None:
        # On the driver connection of the caller's transaction: one event per change
        # makes this the most frequent write of every service.
        driver = await session_driver(self._session)
        await driver.execute(
            self._insert,
            event.id,
            event.subject,
            event.name,
            event.model_dump_json(exclude_none=True),
        )


class OutboxRelay:
    """Publishes committed outbox rows; several replicas share the work through
    `FOR UPDATE SKIP LOCKED`.

    Order per aggregate: within a batch, one aggregate's rows go out one after another
    (confirm before the next); different aggregates are published concurrently and their
    confirms awaited together. Across replicas, a replica leaves an aggregate alone while
    an earlier row of it is claimed by another replica, so a later event of an aggregate
    is never published before an earlier one has been confirmed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        broker: Broker,
        *,
        batch_size: int = 100,
        poll_seconds: float = 0.5,
        retention: timedelta = timedelta(days=7),
        prune_interval_seconds: float = 600.0,
        prune_batch_size: int = 10_000,
    ) -> None:
        self._engine = engine
        self._table = table
        self._broker = broker
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._prune_interval = prune_interval_seconds
        self._prune_batch_size = prune_batch_size
        self._next_prune = 0.0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.unroutable = 0

    @classmethod
    def from_settings(
        cls, engine: AsyncEngine, table: Table, broker: Broker, settings: OutboxSettings
    ) -> OutboxRelay:
        return cls(
            engine,
            table,
            broker,
            batch_size=settings.batch_size,
            poll_seconds=settings.poll_seconds,
            retention=timedelta(days=settings.retention_days),
            prune_interval_seconds=settings.prune_interval_seconds,
            prune_batch_size=settings.prune_batch_size,
        )

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
                await self._prune_when_due()
                backoff = 0.2
            except Exception as exc:
                logger.warning("outbox relay failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == self._batch_size:
                continue
            self._wakeup.clear()
            # Not asyncio.wait_for: on 3.11 it swallows a cancellation that arrives as the
            # wake-up fires (a commit just before shutdown), and `stop` then never returns.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self._prune_interval
            pruned = await self.prune()
            if pruned:
                logger.info("pruned %d sent outbox rows", pruned)

    async def prune(self, *, older_than: timedelta | None = None) -> int:
        """Delete rows sent longer than the retention period ago (in bounded batches, so
        a long backlog does not hold one huge transaction); returns how many."""
        t = self._table
        cutoff = datetime.now(UTC) - (self._retention if older_than is None else older_than)
        total = 0
        while True:
            async with self._engine.begin() as conn:
                doomed = (
                    select(t.c.position)
                    .where(t.c.sent_at.is_not(None), t.c.sent_at < cutoff)
                    .order_by(t.c.position)
                    .limit(self._prune_batch_size)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                result = await conn.execute(delete(t).where(t.c.position.in_(doomed)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
            total += deleted
            if deleted < self._prune_batch_size:
                return total

    async def observe_backlog(self) -> None:
        """Set the backlog gauges: unsent rows and the age of the oldest (at scrape time)."""
        t = self._table
        async with self._engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))
                )
            ).one()
        OUTBOX_BACKLOG.set(count)
        OUTBOX_OLDEST_AGE.set(
            max((datetime.now(UTC) - oldest).total_seconds(), 0.0) if oldest else 0.0
        )

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
            rows = await self._without_aggregates_claimed_elsewhere(conn, rows)
            if not rows:
                return 0

            async def publish_in_order(aggregate_rows: Sequence[Any]) -> None:
                for row in aggregate_rows:
                    payload: dict[str, Any] = row.payload
                    headers: dict[str, str] = {}
                    with publish_span(row.routing_key, str(row.event_id), payload, headers):
                        routed = await self._broker.publish(
                            row.routing_key,
                            json.dumps(payload, separators=(",", ":")).encode(),
                            message_id=str(row.event_id),
                            correlation_id=payload.get("correlationid"),
                            headers=headers,
                        )
                    EVENTS_PUBLISHED.labels(row.routing_key).inc()
                    if not routed:
                        EVENTS_UNROUTABLE.labels(row.routing_key).inc()
                        # Confirmed by the broker but bound to no queue and no alternate
                        # exchange: counted as sent, so it cannot block the outbox.
                        self.unroutable += 1
                        # INFO, not WARNING: without the policy of deploy/rabbitmq (as
                        # under `make up`) events nobody consumes are routine.
                        logger.info(
                            "event %s (%s) was routed to no queue",
                            row.event_id,
                            row.routing_key,
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
        self.published += len(rows)
        return len(rows)

    async def _without_aggregates_claimed_elsewhere(
        self, conn: AsyncConnection, rows: Sequence[Any]
    ) -> list[Any]:
        """Drop the aggregates that have an earlier unsent row outside this batch: another
        replica holds it (SKIP LOCKED skipped it), and must publish it first."""
        t = self._table
        first_here: dict[str, int] = {}
        for row in rows:
            first_here.setdefault(row.aggregate_id, row.position)
        result = await conn.execute(
            select(t.c.aggregate_id, func.min(t.c.position))
            .where(t.c.sent_at.is_(None), t.c.aggregate_id.in_(list(first_here)))
            .group_by(t.c.aggregate_id)
        )
        earliest: dict[str, int] = {row[0]: row[1] for row in result}
        blocked = {
            aggregate
            for aggregate, position in first_here.items()
            if earliest.get(aggregate, position) < position
        }
        if blocked:
            logger.debug("leaving %d aggregates to another relay", len(blocked))
        return [row for row in rows if row.aggregate_id not in blocked]
