"""Delivery guarantees against real RabbitMQ and PostgreSQL: poison messages, several
replicas, a consumer killed mid-batch, and the broker restarted under an outbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.processes import free_port, stop_group
from bugtracker_devstack.stack import REPO_ROOT, Stack
from bugtracker_notifications.main import EVENTS_QUEUE
from bugtracker_shared import dlq
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import DELIVERY_LIMIT, Broker
from bugtracker_shared.outbox import OutboxRelay, OutboxSettings, OutboxWriter, outbox_table
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

pytestmark = pytest.mark.integration

Poll = Callable[..., Awaitable[Any]]
Publish = Callable[[CloudEvent], Awaitable[None]]
Assigned = Callable[..., CloudEvent]


async def count_for(db: asyncpg.Connection, event_ids: list[uuid.UUID]) -> tuple[int, int]:
    """(notifications, distinct events notified) among `event_ids`."""
    row = await db.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d "
        "FROM notifications.notifications WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    assert row is not None
    return int(row["n"]), int(row["d"])


def _consumer_counts() -> dict[str, float]:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"queue": EVENTS_QUEUE, **labels}) or 0.0

    consumed = "bugtracker_events_consumed_total"
    kind = {"type": "ticket.assigned"}
    return {
        "handled": sample(consumed, **kind, outcome="handled"),
        "failed": sample(consumed, **kind, outcome="failed"),
        "dead_lettered": sample("bugtracker_events_dead_lettered_total"),
    }


async def test_a_poison_message_is_dead_lettered_after_the_delivery_limit_without_blocking(
    client: httpx.AsyncClient,
    infra: Stack,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    poison = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    # It passes every check made before handling (envelope, source, data schema) but the
    # handler cannot apply it: its actor is not a user id.
    poison = poison.model_copy(update={"actorid": "not-a-user-id"})
    healthy = [assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4()) for _ in range(3)]
    before = _consumer_counts()

    await publish(poison)
    for event in healthy:
        await publish(event)

    async def healthy_done() -> bool:
        return await count_for(superuser_db, [e.id for e in healthy]) == (3, 3)

    await poll(healthy_done, what="the events behind the poison message")

    async def dead_lettered() -> list[dlq.DeadLetter]:
        found = await dlq.list_dead_letters(infra.rabbitmq.url, [EVENTS_QUEUE])
        return [d for d in found.get(f"{EVENTS_QUEUE}.dlq", []) if d.message_id == str(poison.id)]

    [letter] = await poll(dead_lettered, what="the poison message in the dead-letter queue")
    # nack(requeue=True) on a quorum queue counts deliveries: past the limit it dies.
    assert letter.reason == "delivery_limit"
    assert letter.type == "io.bugtracker.ticket.assigned.v1"
    assert letter.routing_key == "ticket.assigned"
    assert letter.queue == EVENTS_QUEUE
    # The consumer's metrics saw it: every failed delivery, and the one that dead-lettered it.
    after = _consumer_counts()
    assert after["dead_lettered"] == before["dead_lettered"] + 1
    assert after["failed"] == before["failed"] + DELIVERY_LIMIT + 1
    assert after["handled"] >= before["handled"] + 3
    scraped = await client.get("/metrics")
    assert f'bugtracker_consumer_queue_messages{{queue="{EVENTS_QUEUE}"}}' in scraped.text
    assert "bugtracker_consumer_lag_seconds_bucket" in scraped.text
    assert not await superuser_db.fetchval(
        "SELECT count(*) FROM notifications.inbox WHERE event_id = $1", poison.id
    )
    # Listing leaves it there; a replay sends it round again, and back it comes.
    assert await dead_lettered()
    assert await dlq.replay(infra.rabbitmq.url, EVENTS_QUEUE, limit=None, direct=True) >= 1
    await poll(dead_lettered, what="the replayed poison message to die again")


async def test_two_replicas_on_one_queue_notify_each_user_once(
    second_replica: Callable[[], AbstractAsyncContextManager[Any]],
    app: Any,
    client: httpx.AsyncClient,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    async with second_replica():
        assignee = uuid.uuid4()
        events = [assigned(actor_id=uuid.uuid4(), assignee_id=assignee) for _ in range(60)]
        for event in events:
            await publish(event)
            await publish(event)  # every event twice: the replicas race for each

        async def all_done() -> bool:
            return await count_for(superuser_db, [e.id for e in events]) == (60, 60)

        await poll(all_done, what="every event to be handled once")
    assert await count_for(superuser_db, [e.id for e in events]) == (60, 60)


@pytest.fixture
async def notifications_process(
    infra: Stack, app: Any, tmp_path: Any
) -> AsyncIterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts the service as its own process (the schema is migrated by `app`)."""
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"notifications-{len(started)}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bugtracker_notifications.main:create_app",
                "--factory",
                "--port",
                str(port),
            ],
            env=infra.env("notifications") | {"BUGTRACKER_NOTIFICATIONS_LOG_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
                if ready.status_code == httpx.codes.OK:
                    return process
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError("the notifications process did not become ready")
            time.sleep(0.1)

    yield start
    for process in started:
        stop_group(process)


async def test_a_consumer_killed_mid_batch_loses_and_duplicates_nothing(
    notifications_process: Callable[[], subprocess.Popen[bytes]],
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    process = await asyncio.to_thread(notifications_process)
    events = [assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4()) for _ in range(300)]
    ids = [e.id for e in events]
    for event in events:
        await publish(event)

    async def some_done() -> bool:
        return (await count_for(superuser_db, ids))[0] >= 20

    await poll(some_done, what="the consumer to be part-way through")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_when_killed = (await count_for(superuser_db, ids))[0]

    await asyncio.to_thread(notifications_process)

    async def all_done() -> bool:
        return await count_for(superuser_db, ids) == (300, 300)

    await poll(all_done, within=60, what="every event after the restart")
    assert done_when_killed < 300, "the kill came too late to be mid-batch"


# -- the outbox relay while the broker goes away ----------------------------------------

RELAY_SCHEMA = "outbox_relay_test"


@pytest.fixture
async def test_outbox(infra: Stack) -> AsyncIterator[tuple[AsyncEngine, Any]]:
    """An outbox table of the shared implementation, in a schema of its own."""
    url = infra.postgres.superuser_dsn("bugtracker").replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    engine = create_async_engine(url, pool_size=5)
    metadata = MetaData(schema=RELAY_SCHEMA)
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {RELAY_SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {RELAY_SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    try:
        yield engine, table
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {RELAY_SCHEMA} CASCADE"))
        await engine.dispose()


@pytest.mark.broker_restart
async def test_200_assignments_through_5_broker_restarts_notify_exactly_200_times(
    infra: Stack,
    app: Any,
    client: httpx.AsyncClient,
    test_outbox: tuple[AsyncEngine, Any],
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    engine, table = test_outbox
    broker = Broker(infra.amqp_url("tickets"), connection_name="test-tickets-relay")
    relay = OutboxRelay(engine, table, broker, OutboxSettings(batch_size=50, poll_seconds=0.2))
    broker.start()
    relay.start()
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    events = [assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4()) for _ in range(200)]
    ids = [e.id for e in events]

    async def write_all() -> None:
        for event in events:  # one business transaction per assignment
            async with sessions() as session:
                await OutboxWriter(session, table).add(event)
                await session.commit()
            relay.wake()
            await asyncio.sleep(0.2)  # pacing, so the writes span all five outages

    async def restart_broker_5_times() -> None:
        for _ in range(5):
            await asyncio.to_thread(infra.rabbitmq.stop)
            await asyncio.to_thread(infra.rabbitmq.start)

    try:
        await asyncio.gather(write_all(), restart_broker_5_times())

        async def all_done() -> bool:
            return await count_for(superuser_db, ids) == (200, 200)

        await poll(all_done, within=60, what="200 notifications after the restarts")
        unsent = await superuser_db.fetchval(
            f"SELECT count(*) FROM {RELAY_SCHEMA}.outbox WHERE sent_at IS NULL"  # noqa: S608
        )
        assert unsent == 0
        assert relay.published >= 200
    finally:
        await relay.stop()
        await broker.close()
        if not infra.rabbitmq.process or infra.rabbitmq.process.poll() is not None:
            await asyncio.to_thread(infra.rabbitmq.start)  # never leave the broker down
    # The service itself reconnected and consumes again.
    await poll(lambda: asyncio.sleep(0, app.state.runtime.broker.is_ready), what="reconnect")
    assert json.loads((await client.get("/health/ready")).text)["checks"]["broker"] == "ok"


async def test_sent_outbox_rows_are_pruned_after_the_retention(
    infra: Stack, test_outbox: tuple[AsyncEngine, Any], assigned: Assigned
) -> None:
    engine, table = test_outbox
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        for _ in range(3):
            await OutboxWriter(session, table).add(assigned(actor_id=None, assignee_id=None))
        await session.commit()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"UPDATE {RELAY_SCHEMA}.outbox SET sent_at = now() - interval '8 days' "  # noqa: S608
                f"WHERE position = (SELECT min(position) FROM {RELAY_SCHEMA}.outbox)"
            )
        )
    relay = OutboxRelay(engine, table, Broker(infra.rabbitmq.url, connection_name="unused"))
    assert await relay.prune() == 1
    assert await relay.prune() == 0
    async with engine.connect() as conn:
        left = await conn.scalar(text(f"SELECT count(*) FROM {RELAY_SCHEMA}.outbox"))  # noqa: S608
    assert left == 2
