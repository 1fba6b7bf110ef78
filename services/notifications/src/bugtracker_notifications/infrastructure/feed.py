"""The live feed: committed notifications, from every replica, to this replica's streams.

The repository's `add_many` announces each new notification with `pg_notify(CHANNEL,
<the row as JSON>)` in the unit of work's transaction; PostgreSQL delivers a NOTIFY only
when its transaction commits, to every session listening at that moment. Each replica
holds one `LISTEN` connection (`ListeningFeed.run`, a background job of the runtime) and
puts each notification on the bounded queue of every open stream of its user in this
process. The same path serves one replica and many (docs/adr/0036).

While the listener is not connected, notifications committed meanwhile reach no stream
of this replica. So every local stream is closed when the connection is lost, and again
(those opened in between) as soon as it listens anew: the client reconnects and lists
what it missed, the stream's documented contract. Readiness fails while it is not
listening.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from bugtracker_shared.db import CONNECT_TIMEOUT_SECONDS
from sqlalchemy.engine import make_url

from bugtracker_notifications.domain.notifications import Notification
from bugtracker_notifications.infrastructure.repositories import (
    CHANNEL,
    notification_of_payload,
)

logger = logging.getLogger("bugtracker.notifications.feed")

# A stream that falls this far behind is closed; the client reconnects and lists.
QUEUE_LIMIT = 256
# Reconnecting: after the first delay, doubling up to the last while it fails (jitter).
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
# An idle LISTEN connection does not notice a silent network loss: it is pinged this
# often, and counts as lost when the ping does not answer in time.
PING_EVERY_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 3.0
APPLICATION_NAME = "bugtracker-notifications-feed"


class FeedNotListeningError(Exception):
    """The feed's LISTEN connection is not established (a readiness failure)."""


class _Subscription:
    def __init__(self, streams: _LocalStreams, user_id: uuid.UUID) -> None:
        self._streams = streams
        self.user_id = user_id
        self.queue: asyncio.Queue[Notification | None] = asyncio.Queue(QUEUE_LIMIT)
        self.closed = False

    def offer(self, notification: Notification) -> None:
        try:
            self.queue.put_nowait(notification)
        except asyncio.QueueFull:
            logger.warning("a notification stream of %s fell behind; closing it", self.user_id)
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._streams.forget(self)
            # Wake a reader blocked on an empty queue (a full queue is drained first).
            if not self.queue.full():
                self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Notification]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item
            if self.closed and self.queue.empty():
                return


class _LocalStreams:
    """The open streams of this process, by user: the in-process fan-out."""

    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[_Subscription]] = {}

    def subscribe(self, user_id: uuid.UUID) -> _Subscription:
        subscription = _Subscription(self, user_id)
        self._subscribers.setdefault(user_id, set()).add(subscription)
        return subscription

    def forget(self, subscription: _Subscription) -> None:
        subscribers = self._subscribers.get(subscription.user_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.user_id]

    def deliver(self, notification: Notification) -> None:
        for subscription in list(self._subscribers.get(notification.user_id, ())):
            subscription.offer(notification)

    def close_all(self) -> int:
        """Close every open stream; how many there were."""
        everyone = [s for subscribers in self._subscribers.values() for s in subscribers]
        for subscription in everyone:
            subscription.close()
        return len(everyone)

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


Connect = Callable[[], Awaitable[asyncpg.Connection]]


def listener_connection(database_url: str) -> Connect:
    """Opens the feed's own connection (outside the engine's pool, which it would hold a
    slot of for ever), to the service's database as its own role."""
    url = make_url(database_url).set(drivername="postgresql")  # asyncpg's DSN
    dsn = url.render_as_string(hide_password=False)

    async def connect() -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": APPLICATION_NAME},
        )
        return connection

    return connect


class ListeningFeed:
    """The `NotificationFeed`: subscriptions fed by this replica's LISTEN connection."""

    def __init__(
        self,
        connect: Connect,
        *,
        retry_first: float = RETRY_FIRST_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
        ping_every: float = PING_EVERY_SECONDS,
    ) -> None:
        self._connect = connect
        self._retry_first = retry_first
        self._retry_max = retry_max
        self._ping_every = ping_every
        self._streams = _LocalStreams()
        self._connection: asyncpg.Connection | None = None

    def subscribe(self, user_id: uuid.UUID) -> _Subscription:
        return self._streams.subscribe(user_id)

    @property
    def stream_count(self) -> int:
        return self._streams.count

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend of the LISTEN connection, while there is one."""
        return self._connection.get_server_pid() if self._connection is not None else None

    async def check(self) -> None:
        """The readiness check: fails while the feed is not listening."""
        if not self.listening:
            raise FeedNotListeningError("the notification feed is not listening")

    async def run(self) -> None:
        """Listen until cancelled; after a loss, connect again with backoff: the first
        delay, doubling up to the last while connecting fails, with jitter."""
        delay = self._retry_first
        while True:
            try:
                await self._listen_until_lost()
                delay = self._retry_first  # it listened: the backoff starts over
            except Exception as exc:  # the listener must outlive any failure
                logger.warning("the notification feed cannot listen: %s", exc)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
            delay = min(delay * 2, self._retry_max)

    async def _listen_until_lost(self) -> None:
        connection = await self._connect()
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            self._connection = connection
            # Listening from now on; streams opened before may have missed a commit.
            if closed := self._streams.close_all():
                logger.info("notification feed listening; closed %d earlier streams", closed)
            else:
                logger.info("notification feed listening")
            await self._until_lost(connection, lost)
        finally:
            was_listening = self._connection is connection
            self._connection = None
            connection.terminate()
            # What commits until it listens again reaches no stream here: close them now
            # (and, at the next LISTEN, those opened meanwhile).
            closed = self._streams.close_all()
            if was_listening and closed:
                logger.info("closed %d notification streams", closed)

    async def _until_lost(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self._ping_every)
            except TimeoutError:
                try:
                    await connection.fetchval("SELECT 1", timeout=PING_TIMEOUT_SECONDS)
                except Exception as exc:  # any failure: the connection is not to be trusted
                    logger.warning("the notification feed's connection does not answer: %s", exc)
                    return
        logger.warning("the notification feed lost its connection")

    def _on_notification(
        self, _connection: object, _pid: int, _channel: str, payload: object
    ) -> None:
        if not self._streams:  # no stream open here: nothing to decode
            return
        try:
            notification = notification_of_payload(str(payload))
        except (ValueError, KeyError, TypeError):
            logger.exception("an unreadable notification payload: %.200s", payload)
            return
        self._streams.deliver(notification)
