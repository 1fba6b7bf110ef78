"""Transactional outbox: events are rows written in the business transaction, and a relay
publishes committed rows with publisher confirms, so nothing is lost while the broker is
away and nothing is published for a transaction that rolled back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bugtracker_shared.db import session_driver
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import Broker
from bugtracker_shared.metrics import (
    EVENTS_PUBLISHED,
    EVENTS_UNROUTABLE,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
)
from bugtracker_shared.tracing import TRACE_HEADERS, publish_span

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
    # After a commit wakes it, the relay waits this long (or until `batch_size` commits
    # have woken it) before it claims, so commits that come together go out in one batch:
    # one claim, one mark and the confirms awaited together for all of them, instead of
    # four round trips per event. The price is this much latency per event, also when
    # the service is otherwise idle; 0 claims at once after every wake-up. A backlog
    # (a full batch) is worked off without waiting.
    linger_seconds: float = 0.005
    retention_days: float = 7.0
    prune_interval_seconds: float = 600.0
    prune_batch_size: int = 10_000


def outbox_row(event: CloudEvent) -> tuple[uuid.UUID, str, str, str]:
    """The outbox columns `(event_id, aggregate_id, routing_key, payload)` of an event,
    the payload as the JSON text the relay will publish."""
    return event.id, event.subject, event.name, event.model_dump_json(exclude_none=True)


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
        await driver.execute(self._insert, *outbox_row(event))

    async def add_many(self, events: Sequence[CloudEvent]) -> None:
        # One pipelined statement for many events (asyncpg's executemany), in order.
        if events:
            driver = await session_driver(self._session)
            await driver.executemany(self._insert, [outbox_row(event) for event in events])


# One statement claims a batch: the first `$1` unsent rows no other relay holds, locked
# until this relay's transaction ends (`batch`), less every row that an unsent row of its
# aggregate outside the batch precedes (`held_elsewhere`: another relay holds that row and
# must publish it first; the rows after it wait for a later round). Row by row, not
# aggregate by aggregate: a row held elsewhere may sit between two rows of this batch.
# Only unsent rows before the batch's last are looked at (the partial index), so the cost
# does not grow with the backlog. The rows come back as the relay sends them: the JSON
# text of the payload as bytes (not decoded and encoded again) and, read in SQL, what goes
# into the message's properties and headers.
_CLAIM = """
WITH batch AS MATERIALIZED (
    SELECT position, aggregate_id
    FROM {table}
    WHERE sent_at IS NULL
    ORDER BY position
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
held_elsewhere AS (
    SELECT o.aggregate_id, min(o.position) AS position
    FROM {table} AS o
    WHERE o.sent_at IS NULL
      AND o.position < (SELECT max(position) FROM batch)
      AND o.aggregate_id IN (SELECT aggregate_id FROM batch)
      AND o.position NOT IN (SELECT position FROM batch)
    GROUP BY o.aggregate_id
)
SELECT o.position, o.aggregate_id, o.routing_key, o.event_id::text AS message_id,
       convert_to(o.payload::text, 'UTF8') AS body,
       o.payload->>'correlationid' AS correlation_id,
       {trace_columns}
FROM batch AS b
JOIN {table} AS o ON o.position = b.position
LEFT JOIN held_elsewhere AS h ON h.aggregate_id = b.aggregate_id
WHERE h.position IS NULL OR b.position < h.position
ORDER BY o.position
"""

_MARK_SENT = "UPDATE {table} SET sent_at = statement_timestamp() WHERE position = ANY($1)"


class OutboxRelay:
    """Publishes committed outbox rows; several replicas share the work through
    `FOR UPDATE SKIP LOCKED`.

    A round is one transaction on the asyncpg connection: BEGIN, one statement that claims
    a batch (`_CLAIM`), the publishes, one statement that marks the published rows sent,
    COMMIT. A failure (or a crash) before the commit leaves the rows unsent and unlocked,
    so they are published again later: delivery is at least once, and consumers drop a
    repeated event id (their inbox).

    Order per aggregate: within a batch, one aggregate's rows go out one after another,
    each confirmed before the next is published; different aggregates are published
    concurrently and their confirms awaited together. Across replicas, a relay leaves a
    row alone while an earlier unsent row of its aggregate is held by another relay, so a
    later event of an aggregate is never published before an earlier one is confirmed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        broker: Broker,
        settings: OutboxSettings | None = None,
    ) -> None:
        self._engine = engine
        self._table = table
        self._broker = broker
        self._settings = settings if settings is not None else OutboxSettings()
        self._next_prune = 0.0
        self._claim = _CLAIM.format(
            table=table.fullname,  # our own table's name
            trace_columns=", ".join(f"o.payload->>'{key}' AS {key}" for key in TRACE_HEADERS),
        )
        self._mark_sent_statement = _MARK_SENT.format(table=table.fullname)
        self._wakeup = asyncio.Event()
        self._woken = 0  # wake-ups since the current round's claim
        self._batch_woken = asyncio.Event()  # `batch_size` of them
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.unroutable = 0
        self.batches = 0  # rounds that published at least one row

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they go out at once."""
        self._woken += 1
        self._wakeup.set()
        if self._woken >= self._settings.batch_size:
            self._batch_woken.set()

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
            # Cleared before the claim: a commit from here on may be too late for it, and
            # its wake-up starts the next round instead of leaving the row to the poll.
            self._wakeup.clear()
            self._batch_woken.clear()
            self._woken = 0
            try:
                published = await self.relay_once() if self._broker.is_ready else 0
                await self._prune_when_due()
                backoff = 0.2
            except Exception as exc:
                logger.warning("outbox relay failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published == self._settings.batch_size:
                continue  # a backlog: the next batch at once
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        """Until a commit wakes the relay (at most `poll_seconds`), then `linger_seconds`
        more, unless `batch_size` commits have woken it by then."""
        # Not asyncio.wait_for: on 3.11 it swallows a cancellation that arrives as the
        # wake-up fires (a commit just before shutdown), and `stop` then never returns.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_seconds):
                await self._wakeup.wait()
        if not self._wakeup.is_set() or self._settings.linger_seconds <= 0:
            return  # the poll, or no lingering
        # The commits of concurrent requests arrive within a few milliseconds of each
        # other: lingering lets them share one round (OutboxSettings.linger_seconds).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.linger_seconds):
                await self._batch_woken.wait()

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self._settings.prune_interval_seconds
            pruned = await self.prune()
            if pruned:
                logger.info("pruned %d sent outbox rows", pruned)

    async def prune(self, *, older_than: timedelta | None = None) -> int:
        """Delete rows sent longer than the retention period ago (in bounded batches, so
        a long backlog does not hold one huge transaction); returns how many."""
        t = self._table
        if older_than is None:
            older_than = timedelta(days=self._settings.retention_days)
        cutoff = datetime.now(UTC) - older_than
        total = 0
        while True:
            async with self._engine.begin() as conn:
                doomed = (
                    select(t.c.position)
                    .where(t.c.sent_at.is_not(None), t.c.sent_at < cutoff)
                    .order_by(t.c.position)
                    .limit(self._settings.prune_batch_size)
                    .with_for_update(skip_locked=True)
                    .scalar_subquery()
                )
                result = await conn.execute(delete(t).where(t.c.position.in_(doomed)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
            total += deleted
            if deleted < self._settings.prune_batch_size:
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
        async with AsyncSession(self._engine) as session:
            # The asyncpg connection inside SQLAlchemy's transaction: the claim's locks
            # last until the commit (or the rollback when anything fails, on close).
            driver = await session_driver(session)
            rows = await driver.fetch(self._claim, self._settings.batch_size)
            if not rows:
                return 0
            await self._publish(rows)
            await self._mark_sent(driver, [row["position"] for row in rows])
            await session.commit()
            # Counted as soon as the commit returns, not after the session closes: a
            # stop() that cancels the task while it closes must not lose the count.
            self.published += len(rows)
            self.batches += 1
        return len(rows)

    async def _mark_sent(self, driver: asyncpg.Connection, positions: list[int]) -> None:
        await driver.execute(self._mark_sent_statement, positions)

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> None:
        """Publish a claimed batch: each aggregate's rows in order, every aggregate at
        once; returns when the broker has confirmed all of them, raises if it did not."""
        by_aggregate: dict[str, list[asyncpg.Record]] = {}
        for row in rows:  # in position order
            by_aggregate.setdefault(row["aggregate_id"], []).append(row)
        # One aggregate's rows are not pipelined on the channel (publish the next before
        # the previous is confirmed), although RabbitMQ keeps a channel's order: when the
        # broker nacks (or never confirms) one of them and confirms the next, the retry
        # would deliver the next before the first, and consumers drop an event older than
        # one they applied (ADR 0010). A batch of many aggregates keeps its confirms
        # together across them; a run of one aggregate pays one confirm round trip each.
        chains = [
            asyncio.ensure_future(self._publish_in_order(aggregate_rows))
            for aggregate_rows in by_aggregate.values()
        ]
        try:
            await asyncio.gather(*chains)
        except BaseException:
            # The round fails and its rows will be published again: stop the other
            # aggregates' chains rather than let them publish behind the retry's back.
            for chain in chains:
                chain.cancel()
            await asyncio.gather(*chains, return_exceptions=True)
            raise

    async def _publish_in_order(self, rows: Sequence[asyncpg.Record]) -> None:
        for row in rows:
            routing_key: str = row["routing_key"]
            message_id: str = row["message_id"]
            headers: dict[str, str] = {}
            # The span's parent is the trace context stored in the event (read in SQL).
            trace_parent = {key: row[key] for key in TRACE_HEADERS}
            with publish_span(routing_key, message_id, trace_parent, headers):
                routed = await self._broker.publish(
                    routing_key,
                    row["body"],
                    message_id=message_id,
                    correlation_id=row["correlation_id"],
                    headers=headers,
                )
            EVENTS_PUBLISHED.labels(routing_key).inc()
            if not routed:
                EVENTS_UNROUTABLE.labels(routing_key).inc()
                # Confirmed by the broker but bound to no queue and no alternate
                # exchange: counted as sent, so it cannot block the outbox.
                self.unroutable += 1
                # INFO, not WARNING: without the policy of deploy/rabbitmq (as under
                # `make up`) events nobody consumes are routine.
                logger.info("event %s (%s) was routed to no queue", message_id, routing_key)
