"""Event path benchmark: assign -> notification latency, relay and consumer throughput.

    uv run python bench/events_bench.py [--latency-events 300] [--throughput-events 5000]

Starts its own PostgreSQL and RabbitMQ (as `make test` does), runs the notifications
service in-process, and drives the shared outbox relay with `ticket.assigned` events shaped
as the tickets service writes them:

- latency: one event per transaction, one at a time, like separate assignments; measured
  from the commit of the outbox row (when the assignment's transaction commits) until
  the notification is pushed to the assignee's live stream (committed by the consumer).
- relay throughput: N rows already committed, then one relay publishes them with
  confirms (to the bound quorum queue, the consumer stopped); events per second until
  every row is marked sent.
- consumer throughput: then the notifications service starts and works off those N
  events (inbox, rules, insert, commit, ack each); events per second.

Prints a table; it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from asgi_lifespan import LifespanManager
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, throwaway_stack
from bugtracker_notifications.main import create_app
from bugtracker_notifications.settings import Settings
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.messaging import Broker
from bugtracker_shared.outbox import OutboxRelay, OutboxWriter, outbox_table
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SCHEMA = "bench_outbox"


def assignment(assignee: uuid.UUID) -> CloudEvent:
    ticket = uuid.uuid4()
    return new_event(
        "ticket.assigned",
        service="tickets",
        subject=ticket,
        sequence=2,
        data={
            "id": str(ticket),
            "key": "BENCH-1",
            "project_id": str(uuid.uuid4()),
            "title": "Benchmark",
            "type": "bug",
            "priority": "high",
            "status": "open",
            "resolution": None,
            "reporter_id": str(uuid.uuid4()),
            "assignee_id": str(assignee),
            "labels": [],
            "due_date": None,
            "version": 2,
            "updated_at": "2026-11-27T10:00:00+00:00",
            "changes": {"assignee_id": {"from": None, "to": str(assignee)}},
        },
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


async def measure_relay(engine: AsyncEngine, broker: Broker, count: int) -> list[tuple[str, str]]:
    """A committed backlog, published by one relay with confirms."""
    table = await fresh_outbox(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        writer = OutboxWriter(session, table)
        for _ in range(count):
            await writer.add(assignment(uuid.uuid4()))
        await session.commit()
    relay = OutboxRelay(engine, table, broker, batch_size=100)
    started = time.perf_counter()
    relay.start()
    unsent = count
    while unsent:
        await asyncio.sleep(0.01)  # the poll interval of the measurement
        async with engine.connect() as conn:
            unsent = int(
                await conn.scalar(
                    select(func.count()).select_from(table).where(table.c.sent_at.is_(None))
                )
                or 0
            )
    elapsed = time.perf_counter() - started
    await relay.stop()
    return [
        ("relay backlog, events", str(count)),
        ("  seconds", f"{elapsed:.2f}"),
        ("  events/s", f"{count / elapsed:.0f}"),
    ]


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


async def run(stack: Stack, latency_events: int, throughput_events: int) -> list[tuple[str, str]]:
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
        rows = await measure_latency(engine, broker, app.state.use_cases, latency_events)
    # The relay alone (its queue bound, the consumer stopped), then the consumer alone.
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
    args = parser.parse_args()
    with throwaway_stack() as stack:
        migrated(stack, "notifications")
        rows = asyncio.run(run(stack, args.latency_events, args.throughput_events))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")


if __name__ == "__main__":
    main()
