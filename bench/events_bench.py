"""Event path benchmark: assign -> notification latency, relay and consumer throughput.

    uv run python bench/events_bench.py [--latency-events 300] [--throughput-events 5000]
        [--aggregates 500] [--stream-events 2000] [--stream-writers 10] [--stream-rate 200]

Starts its own PostgreSQL and RabbitMQ (as `make test` does), runs the notifications
service in-process, and drives the shared outbox relay with `ticket.assigned` events shaped
as the tickets service writes them:

- latency: one event per transaction, one at a time, like separate assignments; measured
  from the commit of the outbox row (when the assignment's transaction commits) until
  the notification is pushed to the assignee's live stream (committed by the consumer).
  It includes the relay's linger after a wake-up (OutboxSettings.linger_seconds).
- publish ceiling: the same number of messages published by `Broker.publish` alone, 100
  confirms awaited together, no database: what a relay could reach at best on this
  machine at this moment (a shared machine's load moves every number here).
- relay throughput: N rows already committed, then one relay publishes them with
  confirms (to the bound quorum queue, the consumer stopped); events per second until
  every row is marked sent. Once with every event of its own aggregate, once with the
  events spread over `--aggregates` aggregates (so a batch holds runs of one aggregate,
  published one after another).
- commit stream: `--stream-writers` concurrent writers commit one event per transaction,
  `--stream-rate` commits per second together, and wake the relay after each commit, as
  the services do; the relay's rounds and rows per round, the time from the last commit
  until every row is sent, and the process's CPU per event (writers and relay).
- consumer throughput: then the notifications service starts and works off those N
  events (inbox, rules, insert, commit, ack each); events per second.

Prints a table; it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
from asgi_lifespan import LifespanManager
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, throwaway_stack
from bugtracker_notifications.main import EVENTS_QUEUE, create_app
from bugtracker_notifications.settings import Settings
from bugtracker_shared.event_schemas import TicketAssigned
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.messaging import Broker
from bugtracker_shared.outbox import OutboxRelay, OutboxSettings, OutboxWriter, outbox_table
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SCHEMA = "bench_outbox"

BENCH_TIME = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def assignment(assignee: uuid.UUID) -> CloudEvent:
    ticket = uuid.uuid4()
    return new_event(
        "ticket.assigned",
        service="tickets",
        subject=ticket,
        sequence=2,
        data=TicketAssigned(
            id=ticket,
            key="BENCH-1",
            project_id=uuid.uuid4(),
            title="Benchmark",
            type="bug",
            priority="high",
            status="open",
            resolution=None,
            reporter_id=uuid.uuid4(),
            assignee_id=assignee,
            labels=[],
            due_date=None,
            version=2,
            created_at=BENCH_TIME,
            updated_at=BENCH_TIME,
            deleted=False,
            changes={"assignee_id": {"from": None, "to": str(assignee)}},
        ),
        actor_id=uuid.uuid4(),
        correlation_id=None,
    )


async def fresh_outbox(engine: AsyncEngine) -> Table:
    metadata = MetaData(schema=SCHEMA)
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    return table


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure_latency(
    engine: AsyncEngine, broker: Broker, cases: Any, count: int
) -> list[tuple[str, str]]:
    """Assignment commit -> notification pushed to the assignee's stream."""
    table = await fresh_outbox(engine)
    relay = OutboxRelay(engine, table, broker)
    relay.start()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    latencies: list[float] = []
    for _ in range(count):
        assignee = uuid.uuid4()
        subscription = cases.subscribe(assignee)
        async with sessions() as session:
            await OutboxWriter(session, table).add(assignment(assignee))
            await session.commit()
        committed = time.perf_counter()
        relay.wake()
        async for _ in subscription:
            latencies.append((time.perf_counter() - committed) * 1000)
            break
        subscription.close()
    await relay.stop()
    return [
        ("assign -> notification, events", str(len(latencies))),
        ("  p50 (ms)", f"{statistics.median(latencies):.1f}"),
        ("  p99 (ms)", f"{percentile(latencies, 99):.1f}"),
        ("  max (ms)", f"{max(latencies):.1f}"),
    ]


class Rounds:
    """The rounds of a relay that published rows (their sizes), watched in-process: the
    watching costs no database round trips."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.sizes: list[int] = []
        self._enough = asyncio.Event()
        self._target = 0
        relay_once = relay.relay_once

        async def counted() -> int:
            published = await relay_once()
            if published:
                self.sizes.append(published)
                if sum(self.sizes) >= self._target:
                    self._enough.set()
            return published

        relay.relay_once = counted  # type: ignore[method-assign]

    async def until_all_sent(self, engine: AsyncEngine, table: Table) -> None:
        """Until the relay has published (and marked sent) every row of `table`; then
        checked once in the database."""
        async with engine.connect() as conn:
            self._target = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
        if sum(self.sizes) < self._target:
            self._enough.clear()
            await self._enough.wait()
        async with engine.connect() as conn:
            unsent = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.sent_at.is_(None))
            )
        if unsent:
            raise RuntimeError(f"{sum(self.sizes)} rows published, {unsent} left unsent")


async def measure_publish_ceiling(broker: Broker, count: int) -> list[tuple[str, str]]:
    """`Broker.publish` alone, 100 confirms awaited together: the relay's upper bound."""
    body = assignment(uuid.uuid4()).model_dump_json(exclude_none=True).encode()
    started = time.perf_counter()
    for first in range(0, count, 100):
        await asyncio.gather(
            *(
                broker.publish(
                    "ticket.assigned", body, message_id=str(uuid.uuid4()), correlation_id=None
                )
                for _ in range(min(100, count - first))
            )
        )
    elapsed = time.perf_counter() - started
    return [
        ("publish ceiling (no relay), messages", str(count)),
        ("  messages/s", f"{count / elapsed:.0f}"),
    ]


async def measure_relay(
    engine: AsyncEngine, broker: Broker, count: int, aggregates: int | None = None
) -> list[tuple[str, str]]:
    """A committed backlog, published by one relay with confirms."""
    table = await fresh_outbox(engine)
    subjects = [str(uuid.uuid4()) for _ in range(aggregates or 0)]
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        writer = OutboxWriter(session, table)
        for _ in range(count):
            event = assignment(uuid.uuid4())
            if subjects:
                event = event.model_copy(update={"subject": random.choice(subjects)})
            await writer.add(event)
        await session.commit()
    relay = OutboxRelay(engine, table, broker, OutboxSettings(batch_size=100))
    rounds = Rounds(relay)
    started = time.perf_counter()
    relay.start()
    await rounds.until_all_sent(engine, table)
    elapsed = time.perf_counter() - started
    await relay.stop()
    spread = f"over {aggregates} aggregates" if aggregates else "one per aggregate"
    return [
        (f"relay backlog, events ({spread})", str(count)),
        ("  seconds", f"{elapsed:.2f}"),
        ("  events/s", f"{count / elapsed:.0f}"),
    ]


async def measure_commit_stream(
    engine: AsyncEngine, broker: Broker, count: int, writers: int, rate: float
) -> list[tuple[str, str]]:
    """Writers commit one event per transaction, `rate` commits per second together, and
    wake the relay after each commit, like a service's requests."""
    table = await fresh_outbox(engine)
    relay = OutboxRelay(engine, table, broker)
    rounds = Rounds(relay)
    relay.start()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    per_writer = count // writers
    started = time.perf_counter()
    cpu_started = time.process_time()

    async def write(offset: int) -> None:
        for n in range(per_writer):
            # Paced: commit number n * writers + offset is due at that many / rate.
            await asyncio.sleep(
                max(0.0, started + (n * writers + offset) / rate - time.perf_counter())
            )
            async with sessions() as session:
                await OutboxWriter(session, table).add(assignment(uuid.uuid4()))
                await session.commit()
            relay.wake()

    await asyncio.gather(*(write(offset) for offset in range(writers)))
    committed = time.perf_counter()
    await rounds.until_all_sent(engine, table)
    done = time.perf_counter()
    cpu = time.process_time() - cpu_started
    await relay.stop()
    total = per_writer * writers
    return [
        (f"commit stream, events ({writers} writers, {rate:.0f}/s)", str(total)),
        ("  commits/s reached", f"{total / (committed - started):.0f}"),
        ("  relay rounds", str(len(rounds.sizes))),
        ("  rows per round (mean)", f"{total / max(len(rounds.sizes), 1):.1f}"),
        ("  last commit -> all sent (ms)", f"{(done - committed) * 1000:.0f}"),
        ("  CPU per event, writers + relay (ms)", f"{cpu / total * 1000:.2f}"),
    ]


async def purge_events_queue(stack: Stack) -> None:
    """Empty the notifications queue, so the consumer measurement finds exactly the
    relay's backlog."""
    connection = await aio_pika.connect(stack.rabbitmq.url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(EVENTS_QUEUE, passive=True)
        await queue.purge()
    finally:
        await connection.close()


async def measure_consumer(
    engine: AsyncEngine, settings: Settings, already: int, count: int
) -> list[tuple[str, str]]:
    """The notifications service works off a backlog of `count` events."""
    started = time.perf_counter()
    async with LifespanManager(create_app(settings), startup_timeout=30):
        handled = 0
        while handled < count:
            await asyncio.sleep(0.05)  # the poll interval of the measurement
            async with engine.connect() as conn:
                total = await conn.scalar(text("SELECT count(*) FROM notifications.inbox"))
            handled = int(total or 0) - already
        elapsed = time.perf_counter() - started
    return [
        ("consumer backlog, events", str(count)),
        ("  seconds (incl. start)", f"{elapsed:.2f}"),
        ("  events/s", f"{count / elapsed:.0f}"),
    ]


async def run(stack: Stack, args: argparse.Namespace) -> list[tuple[str, str]]:
    latency_events: int = args.latency_events
    throughput_events: int = args.throughput_events
    dsn = stack.postgres.superuser_dsn("bugtracker")
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    settings = Settings(
        database_url=stack.database_url("notifications"),
        amqp_url=stack.amqp_url("notifications"),
        log_level="WARNING",
    )
    broker = Broker(stack.amqp_url("tickets"), connection_name="bench-relay")
    broker.start()
    await broker.wait_connected()
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30):
        await app.state.runtime.broker.wait_connected()
        # Streams opened before the feed listens are closed when it does (docs/adr/0036).
        while not app.state.use_cases.feed.listening:  # noqa: ASYNC110 (a poll of a property)
            await asyncio.sleep(0.05)
        rows = await measure_latency(engine, broker, app.state.use_cases, latency_events)
    # The relay alone (its queue bound, the consumer stopped), then the consumer alone.
    rows += await measure_publish_ceiling(broker, throughput_events)
    rows += await measure_relay(engine, broker, throughput_events, args.aggregates)
    rows += await measure_commit_stream(
        engine, broker, args.stream_events, args.stream_writers, args.stream_rate
    )
    await purge_events_queue(stack)
    rows += await measure_relay(engine, broker, throughput_events)
    await broker.close()
    rows += await measure_consumer(engine, settings, latency_events, throughput_events)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    await engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--throughput-events", type=int, default=5000)
    parser.add_argument("--aggregates", type=int, default=500)
    parser.add_argument("--stream-events", type=int, default=2000)
    parser.add_argument("--stream-writers", type=int, default=10)
    parser.add_argument("--stream-rate", type=float, default=200.0)
    args = parser.parse_args()
    with throwaway_stack() as stack:
        migrated(stack, "notifications")
        rows = asyncio.run(run(stack, args))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")


if __name__ == "__main__":
    main()
