"""What a consumer does with deliveries that are not events it may apply, against the real
RabbitMQ and PostgreSQL the run starts: every one is settled (never left holding a
prefetch slot), dead-lettered with its reason logged, and the events behind it are
handled; a consumer that stops making progress makes the service unready."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_notifications.main import EVENTS_QUEUE
from bugtracker_shared import dlq
from bugtracker_shared.events import CONTENT_TYPE, CloudEvent
from bugtracker_shared.messaging import DEAD_LETTER_LOG_BYTES, declare_exchange
from fastapi import FastAPI

pytestmark = pytest.mark.integration

Poll = Callable[..., Awaitable[Any]]
Publish = Callable[[CloudEvent], Awaitable[None]]
Assigned = Callable[..., CloudEvent]
PublishRaw = Callable[[bytes, str, str], Awaitable[None]]


class Records(logging.Handler):
    """The records of one logger (the app's logging setup replaces the root's handlers,
    caplog's among them; this one sits on the messaging logger itself)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def dead_letter_reasons(self) -> dict[str, str]:
        """message id -> the reason its dead-lettering line names."""
        return {
            str(record.args[0]): str(getattr(record, "dead_letter_reason", ""))
            for record in self.records
            if record.getMessage().startswith("dead-lettering") and isinstance(record.args, tuple)
        }


@pytest.fixture
def messaging_log() -> Iterator[Records]:
    logger = logging.getLogger("bugtracker.messaging")
    handler = Records()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
async def publish_raw(infra: Stack) -> AsyncIterator[PublishRaw]:
    """Publish any body under any routing key, as a broken or hostile publisher could."""
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await declare_exchange(channel)

        async def send(body: bytes, routing_key: str, message_id: str) -> None:
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type=CONTENT_TYPE,
                    message_id=message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=routing_key,
                mandatory=True,
            )

        yield send
    finally:
        await connection.close()


def as_json(event: CloudEvent, **changes: Any) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True) | changes


async def notified(db: asyncpg.Connection, event_id: uuid.UUID) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE event_id = $1", event_id
        )
    )


async def in_dead_letters(infra: Stack, ids: set[str]) -> dict[str, dlq.DeadLetter]:
    found = await dlq.list_dead_letters(infra.rabbitmq.url, [EVENTS_QUEUE])
    letters = {d.message_id: d for d in found.get(f"{EVENTS_QUEUE}.dlq", []) if d.message_id}
    return {id_: letters[id_] for id_ in ids if id_ in letters}


@pytest.mark.usefixtures("client")
async def test_malformed_events_are_dead_lettered_and_never_stall_the_consumer(
    infra: Stack,
    publish: Publish,
    publish_raw: PublishRaw,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
    messaging_log: Records,
) -> None:
    # Schema-valid CloudEvents: 25 of a foreign type, 25 whose `time` has no timezone.
    # Each is more than the consumer's prefetch (20) on its own.
    reasons: dict[str, str] = {}
    for _ in range(25):
        event = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
        body = as_json(event, type="com.example.ticket.assigned.v1")
        await publish_raw(json.dumps(body).encode(), "ticket.assigned", str(event.id))
        reasons[str(event.id)] = "unknown_type"
    for _ in range(25):
        event = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
        body = as_json(event, time="2024-05-01T12:00:00")
        await publish_raw(json.dumps(body).encode(), "ticket.assigned", str(event.id))
        reasons[str(event.id)] = "time_without_timezone"
    real = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    await publish(real)

    async def real_handled() -> bool:
        return await notified(superuser_db, real.id) == 1

    await poll(real_handled, what="the real event behind 50 malformed ones")

    async def all_dead() -> dict[str, dlq.DeadLetter] | None:
        found = await in_dead_letters(infra, set(reasons))
        return found if len(found) == len(reasons) else None

    letters = await poll(all_dead, what="every malformed event in the dead-letter queue")
    assert {letter.reason for letter in letters.values()} == {"rejected"}
    assert {letter.queue for letter in letters.values()} == {EVENTS_QUEUE}
    assert {letter.routing_key for letter in letters.values()} == {"ticket.assigned"}
    logged = messaging_log.dead_letter_reasons()
    assert {id_: logged.get(id_) for id_ in reasons} == reasons


@pytest.mark.usefixtures("client")
@pytest.mark.parametrize(
    ("reason", "tamper"),
    [
        # delivered under another event's routing key than its type
        ("routing_key_mismatch", {"routing_key": "ticket.commented"}),
        # a ticket event from the projects service
        ("source_mismatch", {"source": "/bugtracker/projects"}),
        # `data` does not match the ticket.assigned schema
        ("invalid_data", {"data_key": None}),
        ("not_a_cloudevent", {"body": b"\x00not json" * 20_000}),
    ],
)
async def test_an_event_that_fails_the_checks_is_dead_lettered_with_its_reason(
    reason: str,
    tamper: dict[str, Any],
    infra: Stack,
    publish: Publish,
    publish_raw: PublishRaw,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
    messaging_log: Records,
) -> None:
    bad = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    body = as_json(bad)
    if "source" in tamper:
        body["source"] = tamper["source"]
    if "data_key" in tamper:
        body["data"] = body["data"] | {"key": tamper["data_key"]}
    raw = tamper.get("body", json.dumps(body).encode())
    await publish_raw(raw, tamper.get("routing_key", "ticket.assigned"), str(bad.id))
    after = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    await publish(after)

    async def dead() -> dict[str, dlq.DeadLetter]:
        return await in_dead_letters(infra, {str(bad.id)})

    [letter] = (await poll(dead, what=f"the {reason} event in the dead-letter queue")).values()
    assert letter.reason == "rejected"  # at once: not after the delivery limit
    assert letter.count == 1

    async def after_handled() -> bool:
        return await notified(superuser_db, after.id) == 1

    await poll(after_handled, what="the event behind it")
    assert await notified(superuser_db, bad.id) == 0
    assert not await superuser_db.fetchval(
        "SELECT count(*) FROM notifications.inbox WHERE event_id = $1", bad.id
    )
    [line] = [
        record
        for record in messaging_log.records
        if record.getMessage().startswith("dead-lettering") and str(bad.id) in record.getMessage()
    ]
    assert getattr(line, "dead_letter_reason", None) == reason
    message = line.getMessage()
    assert reason in message
    # The body is in the line, bounded.
    if len(raw) > DEAD_LETTER_LOG_BYTES:
        assert f"({len(raw) - DEAD_LETTER_LOG_BYTES} more bytes)" in message
        assert len(message) < 4 * DEAD_LETTER_LOG_BYTES + 1000  # escaped bytes: 4 chars each
    else:
        assert raw.decode() in message


async def test_a_consumer_that_stops_making_progress_makes_the_service_unready(
    app: FastAPI,
    client: httpx.AsyncClient,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    infra: Stack,
) -> None:
    app.state.runtime.broker.stalled_after_seconds = 0.5
    event = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    # The handler's transaction waits on this lock: the delivery stays unsettled.
    locker = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute(
            "LOCK TABLE notifications.subject_sequences, notifications.inbox "
            "IN ACCESS EXCLUSIVE MODE"
        )
        await publish(event)

        async def unready() -> dict[str, Any] | None:
            response = await client.get("/health/ready")
            body: dict[str, Any] = response.json()
            return body if response.status_code == httpx.codes.SERVICE_UNAVAILABLE else None

        body = await poll(unready, what="readiness to report the stalled consumer")
        assert body["checks"]["consumers"] == "unavailable"
        assert body["checks"]["broker"] == "ok"
        await transaction.rollback()
    finally:
        await locker.close()

    async def ready_again() -> bool:
        return (await client.get("/health/ready")).status_code == httpx.codes.OK

    await poll(ready_again, what="readiness once the consumer makes progress again")
