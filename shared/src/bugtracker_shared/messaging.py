"""RabbitMQ with aio-pika: one robust connection per process, a confirming publisher and
idempotent-consumer plumbing.

Topology is declared idempotently by whoever needs it: publishers declare the durable
topic exchange; each consumer declares its durable quorum queue with a delivery limit
and its dead-letter queue. Publishing is mandatory: an event no queue is bound to goes to
the alternate exchange the broker's policy names (deploy/rabbitmq), or comes back as a
basic.return, which the publisher reports instead of blocking on it (docs/adr/0009).

Consumers get at most `prefetch` unacknowledged messages; each one is handled in its own
task, but events of one subject (aggregate) are handled one after another, in delivery
order, so a consumer never applies an older state after a newer one by its own doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.connection import make_url
from pydantic import ValidationError

from bugtracker_shared.events import CONTENT_TYPE, DEAD_LETTER_EXCHANGE, EXCHANGE, CloudEvent
from bugtracker_shared.logs import log_context
from bugtracker_shared.metrics import (
    CONSUMER_LAG,
    CONSUMER_QUEUE_MESSAGES,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
)
from bugtracker_shared.tracing import consume_span

logger = logging.getLogger("bugtracker.messaging")

EventHandler = Callable[[CloudEvent], Awaitable[None]]

PUBLISH_TIMEOUT_SECONDS = 10.0
DELIVERY_LIMIT = 5


class BrokerUnavailableError(RuntimeError):
    pass


class Broker:
    """A robust connection that is made in the background, so a service starts (and keeps
    accepting writes into its outbox) while RabbitMQ is away."""

    def __init__(self, url: str, *, connection_name: str) -> None:
        self._url = url
        self._name = connection_name
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumers: list[tuple[str, Sequence[str], EventHandler, int]] = []
        self._inspect_channel: AbstractChannel | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    def add_consumer(
        self, queue: str, routing_keys: Sequence[str], handler: EventHandler, prefetch: int = 20
    ) -> None:
        """Register before `start`; the queue is declared and consumed once connected."""
        self._consumers.append((queue, routing_keys, handler, prefetch))

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def is_ready(self) -> bool:
        return (
            self._connected.is_set()
            and self._connection is not None
            and not self._connection.is_closed
        )

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            # Kept before it connects, so `close` can stop it even mid-attempt (a cancelled
            # attempt of aio-pika's robust connection would otherwise go on reconnecting).
            connection = aio_pika.RobustConnection(
                make_url(self._url), client_properties={"connection_name": self._name}
            )
            self._connection = connection
            try:
                await connection.connect()
                break
            except (OSError, aio_pika.exceptions.AMQPError) as exc:
                await connection.close()
                logger.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._publish_channel = await connection.channel(publisher_confirms=True)
        self._exchange = await declare_exchange(self._publish_channel)
        for queue, keys, handler, prefetch in self._consumers:
            await self._consume(connection, queue, keys, handler, prefetch)
        self._connected.set()
        logger.info("connected to the broker")

    async def _consume(
        self,
        connection: AbstractRobustConnection,
        queue_name: str,
        routing_keys: Sequence[str],
        handler: EventHandler,
        prefetch: int,
    ) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        exchange = await declare_exchange(channel)
        queue = await declare_consumer_queue(channel, exchange, queue_name, routing_keys)
        await queue.consume(_message_callback(handler, queue_name))

    async def observe_queue_depths(self) -> None:
        """Set the ready-message gauge of each of this process's queues (at scrape time)."""
        if not self._consumers or not self.is_ready or self._connection is None:
            return
        try:
            if self._inspect_channel is None or self._inspect_channel.is_closed:
                self._inspect_channel = await self._connection.channel()
            for queue_name, *_ in self._consumers:
                queue = await self._inspect_channel.declare_queue(queue_name, passive=True)
                declared = queue.declaration_result
                CONSUMER_QUEUE_MESSAGES.labels(queue_name).set(declared.message_count or 0)
        except (aio_pika.exceptions.AMQPError, OSError, RuntimeError) as exc:
            logger.warning("could not read queue depths: %s", exc)

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str | None,
        headers: dict[str, str] | None = None,
    ) -> bool:
        """Publish a persistent, mandatory message and wait for the broker's confirm.

        Returns False when the broker could not route it anywhere (no bound queue and no
        alternate exchange): the broker has taken it and confirmed it, so it counts as
        sent; the caller logs it. Raises when the broker did not confirm."""
        if not self.is_ready or self._exchange is None:
            raise BrokerUnavailableError("not connected to the broker")
        result = await self._exchange.publish(
            aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                message_id=message_id,
                correlation_id=correlation_id,
                headers=dict(headers) if headers else None,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )
        return not isinstance(result, aiormq.abc.DeliveredMessage)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            await self._connection.close()


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_consumer_queue(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    name: str,
    routing_keys: Sequence[str],
    *,
    delivery_limit: int = DELIVERY_LIMIT,
) -> aio_pika.abc.AbstractQueue:
    """`name` as a durable quorum queue bound to `routing_keys`, with `name.dlq` behind it."""
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        f"{name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx, routing_key=name)
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


class _SubjectLocks:
    """One FIFO lock per subject while any of its events is being handled."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, subject: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(subject, (asyncio.Lock(), 0))
        self._locks[subject] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[subject]
            if users == 1:
                del self._locks[subject]
            else:
                self._locks[subject] = (lock, users - 1)


def _message_callback(
    handler: EventHandler, queue: str
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Parse, handle, then ack: the handler commits (inbox row included) before the ack,
    so a crash in between means a redelivery that the inbox turns into a no-op."""
    subjects = _SubjectLocks()

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.model_validate_json(message.body)
        except ValidationError:
            logger.error("dead-lettering a message that is not a CloudEvent: %r", message.body)
            EVENTS_CONSUMED.labels(queue, "-", "rejected").inc()
            EVENTS_DEAD_LETTERED.labels(queue).inc()
            await message.reject(requeue=False)
            return
        routing_key = event.name
        # Tasks start in delivery order and the lock is FIFO: one subject's events are
        # handled in the order the queue delivered them.
        async with subjects.hold(event.subject):
            CONSUMER_LAG.labels(queue).observe(
                max((datetime.now(UTC) - event.time).total_seconds(), 0.0)
            )
            with (
                log_context(event_id=event.id, event_type=routing_key),
                consume_span(queue, routing_key, str(event.id), message.headers or {}),
            ):
                try:
                    await handler(event)
                except Exception:
                    # Returned to the queue; the quorum queue counts the delivery and, past
                    # its delivery limit, dead-letters the poison message instead of looping.
                    logger.exception("handling event %s (%s) failed", event.id, event.type)
                    EVENTS_CONSUMED.labels(queue, routing_key, "failed").inc()
                    if _deliveries_so_far(message) + 1 > DELIVERY_LIMIT:
                        EVENTS_DEAD_LETTERED.labels(queue).inc()
                    await message.nack(requeue=True)
                    return
            EVENTS_CONSUMED.labels(queue, routing_key, "handled").inc()
            await message.ack()

    return on_message


def _deliveries_so_far(message: AbstractIncomingMessage) -> int:
    """Earlier failed deliveries of this message, as the quorum queue counts them."""
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0
