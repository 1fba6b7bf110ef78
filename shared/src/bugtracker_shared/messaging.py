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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
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

from bugtracker_shared.event_schemas import EVENT_DATA, source_service, validate_data
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
# A consumer with a delivery outstanding (neither acked nor nacked) for longer than this
# has stopped making progress: its readiness check fails (Broker.check_consumers).
STALLED_AFTER_SECONDS = 120.0
# How much of a dead-lettered message's body its log line holds.
DEAD_LETTER_LOG_BYTES = 64 * 1024


class BrokerUnavailableError(RuntimeError):
    pass


class ConsumerStalledError(RuntimeError):
    pass


class Broker:
    """A robust connection that is made in the background, so a service starts (and keeps
    accepting writes into its outbox) while RabbitMQ is away."""

    def __init__(
        self,
        url: str,
        *,
        connection_name: str,
        stalled_after_seconds: float = STALLED_AFTER_SECONDS,
    ) -> None:
        self._url = url
        self._name = connection_name
        self.stalled_after_seconds = stalled_after_seconds
        self._progress: list[_Progress] = []
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumers: list[tuple[str, Sequence[str], EventHandler, int]] = []
        self._expires_seconds: dict[str, float] = {}  # queue -> its x-expires, if any
        self._inspect_channel: AbstractChannel | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    def add_consumer(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: EventHandler,
        prefetch: int = 20,
        *,
        expires_seconds: float | None = None,
    ) -> None:
        """Register before `start`; the queue is declared and consumed once connected.
        `expires_seconds`: for a queue of this process alone, which the broker deletes
        (with its dead-letter queue) once unused that long (`x-expires`)."""
        self._consumers.append((queue, routing_keys, handler, prefetch))
        if expires_seconds is not None:
            self._expires_seconds[queue] = expires_seconds

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def is_ready(self) -> bool:
        return (
            self._connected.is_set()
            and self._connection is not None
            and not self._connection.is_closed
        )

    def stalled_consumers(self) -> list[str]:
        """The queues whose consumer has had a delivery outstanding (not acked, nacked or
        rejected) for longer than `stalled_after_seconds`."""
        return [
            progress.queue
            for progress in self._progress
            if progress.oldest_age() > self.stalled_after_seconds
        ]

    def check_consumers(self) -> None:
        """Raise when a consumer has stopped making progress (for readiness)."""
        stalled = self.stalled_consumers()
        if stalled:
            raise ConsumerStalledError(
                f"no progress for {self.stalled_after_seconds:.0f}s on {', '.join(stalled)}"
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
                # The channels and queues too: a broker that goes away while they are set
                # up (a restart) must mean another attempt, not a dead connection task.
                await self._set_up(connection)
                break
            except (OSError, aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError) as exc:
                await connection.close()
                logger.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._connected.set()
        logger.info("connected to the broker")

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        self._progress = []
        self._publish_channel = await connection.channel(publisher_confirms=True)
        self._exchange = await declare_exchange(self._publish_channel)
        for queue, keys, handler, prefetch in self._consumers:
            await self._consume(connection, queue, keys, handler, prefetch)

    async def _consume(
        self,
        connection: AbstractRobustConnection,
        queue_name: str,
        routing_keys: Sequence[str],
        handler: EventHandler,
        prefetch: int,
    ) -> None:
        expires = self._expires_seconds.get(queue_name)
        try:
            queue = await self._declare(connection, queue_name, routing_keys, prefetch, expires)
        except aiormq.exceptions.ChannelPreconditionFailed:
            if expires is None:
                raise
            # A queue of one process (a gateway replica's) declared by an earlier version
            # without `x-expires`: RabbitMQ refuses the new arguments. It holds nothing the
            # process does not restore at start (its seed), so it is replaced.
            logger.warning("queue %s has other arguments; replacing it", queue_name)
            cleanup = await connection.channel()
            try:
                await cleanup.queue_delete(queue_name)
                await cleanup.queue_delete(f"{queue_name}.dlq")
            finally:
                await cleanup.close()
            queue = await self._declare(connection, queue_name, routing_keys, prefetch, expires)
        progress = _Progress(queue_name)
        self._progress.append(progress)
        await queue.consume(_message_callback(handler, queue_name, progress))

    @staticmethod
    async def _declare(
        connection: AbstractRobustConnection,
        queue_name: str,
        routing_keys: Sequence[str],
        prefetch: int,
        expires: float | None,
    ) -> aio_pika.abc.AbstractQueue:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        exchange = await declare_exchange(channel)
        return await declare_consumer_queue(
            channel, exchange, queue_name, routing_keys, expires_seconds=expires
        )

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
    expires_seconds: float | None = None,
) -> aio_pika.abc.AbstractQueue:
    """`name` as a durable quorum queue bound to `routing_keys`, with `name.dlq` behind it.

    With `expires_seconds` (a queue of one process, such as a gateway replica's), the
    broker deletes both queues once nobody has consumed or declared them for that long
    (`x-expires`). RabbitMQ refuses to declare an existing queue with other arguments: a
    queue declared before without it has to be deleted once."""
    expiry: dict[str, int] = (
        {"x-expires": max(1, round(expires_seconds * 1000))} if expires_seconds is not None else {}
    )
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        f"{name}.dlq", durable=True, arguments={"x-queue-type": "quorum", **expiry}
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
            **expiry,
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


class _Progress:
    """The deliveries of one consumer that are not settled yet (acked, nacked or
    rejected), with when each arrived: a delivery outstanding for long means the consumer
    has stopped making progress, which readiness reports."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._outstanding: dict[int, float] = {}
        self._next = 0

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        token, self._next = self._next, self._next + 1
        self._outstanding[token] = time.monotonic()
        try:
            yield
        finally:
            del self._outstanding[token]

    def oldest_age(self) -> float:
        """Seconds the oldest unsettled delivery has been outstanding (0 when none)."""
        if not self._outstanding:
            return 0.0
        return time.monotonic() - min(self._outstanding.values())


class InvalidEventError(ValueError):
    """A delivery that is not an event this consumer may apply; `reason` names why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def accepted_event(body: bytes, routing_key: str | None, *, direct: bool = False) -> CloudEvent:
    """The delivered event, checked before any handler sees it: a CloudEvent of a
    Bugtracker type whose `time` has a timezone, delivered under its own routing key
    (unless an operator sent it straight to the queue: `direct`), from the one service
    that publishes that type, with `data` that matches the type's schema.
    Raises InvalidEventError (with a reason) otherwise."""
    try:
        event = CloudEvent.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidEventError("not_a_cloudevent", _first_error(exc)) from exc
    try:
        name = event.name
    except ValueError as exc:
        raise InvalidEventError("unknown_type", str(exc)) from exc
    if name not in EVENT_DATA:
        raise InvalidEventError("unknown_type", f"no Bugtracker event is named {name}")
    if event.time.tzinfo is None or event.time.utcoffset() is None:
        raise InvalidEventError("time_without_timezone", f"time {event.time.isoformat()}")
    if not direct and routing_key != name:
        raise InvalidEventError(
            "routing_key_mismatch", f"routing key {routing_key!r} for an event of type {name}"
        )
    expected = f"/bugtracker/{source_service(name)}"
    if event.source != expected:
        raise InvalidEventError(
            "source_mismatch", f"{name} comes from {expected}, not {event.source!r}"
        )
    try:
        validate_data(name, event.data)
    except ValidationError as exc:
        raise InvalidEventError("invalid_data", _first_error(exc)) from exc
    return event


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(part) for part in first["loc"]) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _logged_body(body: bytes) -> str:
    """The body for the log, bounded: at most DEAD_LETTER_LOG_BYTES of it."""
    shown = body[:DEAD_LETTER_LOG_BYTES].decode("utf-8", errors="backslashreplace")
    if len(body) > DEAD_LETTER_LOG_BYTES:
        shown += f"... ({len(body) - DEAD_LETTER_LOG_BYTES} more bytes)"
    return shown


async def _dead_letter(
    message: AbstractIncomingMessage, queue: str, error: InvalidEventError
) -> None:
    """Reject without requeue: the quorum queue moves it to `<queue>.dlq` (x-death reason
    `rejected`); the log line names our reason and holds the body."""
    logger.error(
        "dead-lettering message %s from %s (routing key %r): %s; body (%d bytes): %s",
        message.message_id or "-",
        queue,
        message.routing_key,
        error,
        len(message.body),
        _logged_body(message.body),
        extra={"dead_letter_reason": error.reason},
    )
    EVENTS_CONSUMED.labels(queue, "-", "rejected").inc()
    EVENTS_DEAD_LETTERED.labels(queue).inc()
    await message.reject(requeue=False)


def _message_callback(
    handler: EventHandler, queue: str, progress: _Progress
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Check, handle, then ack: the handler commits (inbox row included) before the ack,
    so a crash in between means a redelivery that the inbox turns into a no-op.

    Every delivery ends settled, whatever its content: acked once handled, rejected to the
    dead-letter queue when it is not a valid event (accepted_event), returned to the
    queue when the handler (or anything else) fails, so none holds a prefetch slot."""
    subjects = _SubjectLocks()

    async def on_message(message: AbstractIncomingMessage) -> None:
        with progress.track():
            try:
                await _settle(message)
            except Exception:
                logger.exception("settling message %s from %s failed", message.message_id, queue)
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)

    async def _settle(message: AbstractIncomingMessage) -> None:
        try:
            # Sent straight to the queue (the default exchange, routing key = the queue)
            # only an operator can do: `python -m bugtracker_shared.dlq replay --direct`.
            direct = message.exchange == "" and message.routing_key == queue
            event = accepted_event(message.body, message.routing_key, direct=direct)
        except InvalidEventError as error:
            await _dead_letter(message, queue, error)
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
                        logger.error(
                            "dead-lettering event %s from %s: delivery_limit; body (%d bytes): %s",
                            event.id,
                            queue,
                            len(message.body),
                            _logged_body(message.body),
                            extra={"dead_letter_reason": "delivery_limit"},
                        )
                    await message.nack(requeue=True)
                    return
            EVENTS_CONSUMED.labels(queue, routing_key, "handled").inc()
            await message.ack()

    return on_message


def _deliveries_so_far(message: AbstractIncomingMessage) -> int:
    """Earlier failed deliveries of this message, as the quorum queue counts them."""
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0
