"""In-process fan-out of committed notifications to the open SSE streams of this replica.

With several replicas, a notification reaches only the streams connected to the replica
whose consumer handled its event; docs/adr/0011 records this limit and the way past it
(PostgreSQL LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence

from bugtracker_notifications.domain.notifications import Notification

logger = logging.getLogger("bugtracker.notifications.feed")

# A stream that falls this far behind is closed; the client reconnects and lists.
QUEUE_LIMIT = 256


class _Subscription:
    def __init__(self, feed: InProcessFeed, user_id: uuid.UUID) -> None:
        self._feed = feed
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
            self._feed.forget(self)
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


class InProcessFeed:
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

    def publish(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            for subscription in list(self._subscribers.get(notification.user_id, ())):
                subscription.offer(notification)

    @property
    def stream_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
