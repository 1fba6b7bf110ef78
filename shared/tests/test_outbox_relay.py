"""The outbox relay against real PostgreSQL and RabbitMQ: batches keep each aggregate's
order, the stored JSON text is what goes out, a failure before the mark publishes again,
and relays running at once (replicas) publish every event once, in order."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.events import CONTENT_TYPE, CloudEvent, raw_event
from bugtracker_shared.messaging import Broker, declare_exchange
from bugtracker_shared.outbox import OutboxRelay, OutboxSettings, OutboxWriter, outbox_table
from bugtracker_testkit import eventually
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

pytestmark = pytest.mark.integration

SCHEMA = "outbox_relay_shared_test"


@dataclass
class Outbox:
    engine: AsyncEngine
    table: Table
    db: asyncpg.Connection

    async def write(self, events: list[CloudEvent]) -> None:
        """The events in one transaction, in this order."""
        async with async_sessionmaker(self.engine)() as session:
            writer = OutboxWriter(session, self.table)
            for event in events:
                await writer.add(event)
            await session.commit()

    async def unsent(self) -> list[str]:
        rows = await self.db.fetch(
            f"SELECT event_id FROM {SCHEMA}.outbox WHERE sent_at IS NULL ORDER BY position"  # noqa: S608
        )
        return [str(row["event_id"]) for row in rows]


@pytest.fixture
async def outbox(infra: Stack) -> AsyncIterator[Outbox]:
    """An outbox table of the shared implementation, in a schema of its own."""
    dsn = infra.postgres.superuser_dsn("bugtracker")
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    metadata = MetaData(schema=SCHEMA)
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    db = await asyncpg.connect(dsn)
    try:
        yield Outbox(engine, table, db)
    finally:
        await db.close()
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await engine.dispose()


@pytest.fixture
async def broker(infra: Stack) -> AsyncIterator[Broker]:
    """A publisher as the tickets service has one (its own RabbitMQ user)."""
    broker = Broker(infra.amqp_url("tickets"), connection_name="test-outbox-relay")
    broker.start()
    await broker.wait_connected()
    try:
        yield broker
    finally:
        await broker.close()


@dataclass
class Listener:
    """A queue bound to this test's own event name, so nothing else lands in it."""

    name: str
    queue: aio_pika.abc.AbstractQueue

    def event(self, aggregate: uuid.UUID, sequence: int, **data: Any) -> CloudEvent:
        return raw_event(
            self.name,
            service="tests",
            subject=aggregate,
            sequence=sequence,
            data={"n": sequence, **data},
            actor_id=None,
            correlation_id=f"corr-{aggregate.hex[:8]}-{sequence}",
        )

    async def drain(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every message in the queue now (all of them are confirmed before a relay
        marks its rows sent)."""
        messages = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages


@pytest.fixture
async def listener(infra: Stack) -> AsyncIterator[Listener]:
    # Under `ticket.`: the relay publishes as the tickets user, whose topic rights allow
    # only its own routing keys (deploy/rabbitmq).
    name = f"ticket.relaytest_{uuid.uuid4().hex[:12]}"
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel()
        exchange = await declare_exchange(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=name)
        yield Listener(name, queue)
    finally:
        await connection.close()


def interleaved(listener: Listener, aggregates: int, per_aggregate: int) -> list[CloudEvent]:
    """Each aggregate's events in sequence, the aggregates taking turns."""
    ids = [uuid.uuid4() for _ in range(aggregates)]
    return [listener.event(a, n) for n in range(1, per_aggregate + 1) for a in ids]


def by_aggregate(events: list[Any], subject: Any) -> dict[str, list[str]]:
    """Event ids per aggregate, in the order of `events`."""
    out: dict[str, list[str]] = {}
    for event in events:
        out.setdefault(subject(event), []).append(_id(event))
    return out


def _id(event: Any) -> str:
    return str(event.id) if isinstance(event, CloudEvent) else str(event.message_id)


def _subject(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    return str(json.loads(message.body)["subject"])


async def test_a_batch_of_several_aggregates_keeps_each_aggregates_order(
    outbox: Outbox, broker: Broker, listener: Listener
) -> None:
    events = interleaved(listener, aggregates=8, per_aggregate=6)
    await outbox.write(events)
    relay = OutboxRelay(outbox.engine, outbox.table, broker, OutboxSettings(batch_size=100))

    assert await relay.relay_once() == 48
    assert relay.batches == 1
    received = await listener.drain()

    assert sorted(_id(m) for m in received) == sorted(_id(e) for e in events)
    assert by_aggregate(received, _subject) == by_aggregate(events, lambda e: e.subject)
    assert await outbox.unsent() == []


async def test_the_published_body_is_the_stored_json_text(
    outbox: Outbox, broker: Broker, listener: Listener
) -> None:
    event = listener.event(
        uuid.uuid4(), 3, title="Absturz beim Speichern \u2013 ü € 🐛", nested={"a": [1, 2.5, None]}
    )
    await outbox.write([event])
    relay = OutboxRelay(outbox.engine, outbox.table, broker)

    assert await relay.relay_once() == 1
    [message] = await listener.drain()

    stored = await outbox.db.fetchval(f"SELECT payload::text FROM {SCHEMA}.outbox")  # noqa: S608
    assert message.body == stored.encode()
    assert CloudEvent.model_validate_json(message.body) == event
    # The properties are as before: the event id, its correlation id, the content type.
    assert message.message_id == str(event.id)
    assert message.correlation_id == event.correlationid
    assert message.content_type == CONTENT_TYPE
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_a_failure_after_publishing_before_marking_publishes_the_rows_again(
    outbox: Outbox, broker: Broker, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = interleaved(listener, aggregates=4, per_aggregate=5)
    await outbox.write(events)
    relay = OutboxRelay(outbox.engine, outbox.table, broker)

    async def crash(*_: Any) -> None:
        raise RuntimeError("the relay died between the confirms and the mark")

    monkeypatch.setattr(relay, "_mark_sent", crash)
    with pytest.raises(RuntimeError, match="between the confirms and the mark"):
        await relay.relay_once()
    first = await listener.drain()
    assert sorted(_id(m) for m in first) == sorted(_id(e) for e in events)
    assert await outbox.unsent() == [str(e.id) for e in events]  # unsent and unlocked
    assert relay.published == 0

    monkeypatch.undo()
    assert await relay.relay_once() == 20
    again = await listener.drain()

    # At least once: everything a second time, in order per aggregate again (consumers
    # drop the repeats by event id).
    assert by_aggregate(again, _subject) == by_aggregate(events, lambda e: e.subject)
    assert await outbox.unsent() == []
    assert relay.published == 20


async def test_an_aggregate_waits_while_another_relay_holds_an_earlier_row(
    outbox: Outbox, broker: Broker, listener: Listener
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    a1, b1, a2, b2, a3 = (
        listener.event(a, 1),
        listener.event(b, 1),
        listener.event(a, 2),
        listener.event(b, 2),
        listener.event(a, 3),
    )
    await outbox.write([a1, b1, a2, b2, a3])
    relay = OutboxRelay(outbox.engine, outbox.table, broker)

    # Another replica holds a2 (claimed, not yet published): a1 and b's events go out,
    # a3 waits behind a2, though it is in this relay's batch.
    holder = outbox.db.transaction()
    await holder.start()
    try:
        await outbox.db.execute(
            f"SELECT 1 FROM {SCHEMA}.outbox WHERE event_id = $1 FOR UPDATE",  # noqa: S608
            a2.id,
        )
        assert await relay.relay_once() == 3
    finally:
        await holder.rollback()  # that replica gave up (its round failed)
    assert [_id(m) for m in await listener.drain()] == [_id(e) for e in (a1, b1, b2)]
    assert await outbox.unsent() == [str(a2.id), str(a3.id)]

    assert await relay.relay_once() == 2
    assert [_id(m) for m in await listener.drain()] == [str(a2.id), str(a3.id)]


async def test_two_relays_at_once_publish_each_event_exactly_once_in_order(
    infra: Stack, outbox: Outbox, broker: Broker, listener: Listener
) -> None:
    # 30 aggregates of 20 events each, unevenly interleaved, each in its own sequence.
    aggregates = [uuid.uuid4() for _ in range(30)]
    turns = [a for a in aggregates for _ in range(20)]
    random.Random(7).shuffle(turns)
    sequence: Counter[uuid.UUID] = Counter()
    events = []
    for aggregate in turns:
        sequence[aggregate] += 1
        events.append(listener.event(aggregate, sequence[aggregate]))
    await outbox.write(events)

    second = Broker(infra.amqp_url("tickets"), connection_name="test-outbox-relay-2")
    second.start()
    await second.wait_connected()
    relays = [
        OutboxRelay(
            outbox.engine, outbox.table, b, OutboxSettings(batch_size=25, poll_seconds=0.05)
        )
        for b in (broker, second)
    ]
    try:
        for relay in relays:
            relay.start()

        async def all_sent_and_counted() -> bool:
            # The rows are marked sent in the database a moment before the relay that
            # sent them counts them (its commit returns): wait for both.
            counted = sum(r.published for r in relays) >= len(events)
            return counted and not await outbox.unsent()

        await eventually(all_sent_and_counted, within=60, what="every row sent and counted")
    finally:
        for relay in relays:
            await relay.stop()
        await second.close()

    received = await listener.drain()
    counts = Counter(_id(m) for m in received)
    assert set(counts) == {str(e.id) for e in events}
    assert set(counts.values()) == {1}, "an event was published twice"
    assert by_aggregate(received, _subject) == by_aggregate(events, lambda e: e.subject)
    assert sum(r.published for r in relays) == len(events)


async def test_commits_that_come_together_go_out_in_one_batch(
    outbox: Outbox, broker: Broker, listener: Listener
) -> None:
    # A long linger, ended by the fifth wake-up (batch_size): the five commits share one
    # round, and nothing waits for the linger to run out.
    relay = OutboxRelay(
        outbox.engine,
        outbox.table,
        broker,
        OutboxSettings(batch_size=5, poll_seconds=30, linger_seconds=30),
    )
    relay.start()
    try:
        await asyncio.sleep(0.2)  # the first round found nothing; the relay waits
        events = [listener.event(uuid.uuid4(), 1) for _ in range(5)]
        sessions = async_sessionmaker(outbox.engine, expire_on_commit=False)
        for event in events:  # separate transactions, as separate requests
            async with sessions() as session:
                await OutboxWriter(session, outbox.table).add(event)
                await session.commit()
            relay.wake()

        async def all_sent_and_counted() -> bool:
            return relay.published >= len(events) and not await outbox.unsent()

        await eventually(all_sent_and_counted, within=10, what="the five events")
    finally:
        await relay.stop()
    assert (relay.batches, relay.published) == (1, 5)
    assert len(await listener.drain()) == 5
