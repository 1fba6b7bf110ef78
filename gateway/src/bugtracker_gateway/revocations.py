"""The revoked-session list: which access tokens the gateway refuses although they verify.

Fed by `auth.session_revoked` and `user.deactivated` events on the gateway's own queue,
and seeded from auth's `/internal/revoked-sessions` at start (after the queue is bound,
so nothing falls between the two). An entry is kept until no access token of its session
can still be valid (`forget_after`, about the access-token lifetime). Checked on every
request, apart from the verified-token cache; listeners (the open event streams) are told
of each revocation. See docs/adr/0007 and docs/adr/0026 (the queue of a replica that is
gone expires: `x-expires`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

import aiohttp
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.messaging import Broker

from bugtracker_gateway.backends import Backends

logger = logging.getLogger("bugtracker.gateway.revocations")


def own_revocation_queue() -> str:
    """A revocation queue name for this process alone: every gateway replica must get
    every revocation, so each needs a queue of its own (a queue it shared would hand each
    event to one of them). The broker deletes it once unused (`x-expires`)."""
    return f"gateway.revocations.{socket.gethostname()}.{secrets.token_hex(4)}"


REVOCATION_EVENTS = ("auth.session_revoked", "user.deactivated")
SEED_PATH = "/internal/revoked-sessions"
# Told of each revocation: the session ids, and the user id when the whole user is cut
# off (`user.deactivated`). The open event streams listen (bugtracker_gateway.streams).
RevocationListener = Callable[[Collection[uuid.UUID], uuid.UUID | None], None]


class RevokedSessions:
    """Session ids with the wall-clock time after which they may be forgotten."""

    def __init__(self, default_ttl_seconds: float) -> None:
        self._default_ttl = default_ttl_seconds
        self._entries: dict[uuid.UUID, float] = {}
        self._next_purge = 0.0
        self._listeners: list[RevocationListener] = []

    def subscribe(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def add(
        self,
        session_ids: Iterable[uuid.UUID],
        forget_after: float | None = None,
        *,
        user_id: uuid.UUID | None = None,
    ) -> None:
        until = forget_after if forget_after is not None else time.time() + self._default_ttl
        session_ids = list(session_ids)
        for session_id in session_ids:
            self._entries[session_id] = max(until, self._entries.get(session_id, 0.0))
        for listener in self._listeners:
            listener(session_ids, user_id)

    def __contains__(self, session_id: object) -> bool:
        now = time.time()
        if now >= self._next_purge:
            self._purge(now)
        return isinstance(session_id, uuid.UUID) and self._entries.get(session_id, 0.0) > now

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now: float) -> None:
        self._entries = {sid: until for sid, until in self._entries.items() if until > now}
        self._next_purge = now + 10.0

    def add_event(self, event: CloudEvent) -> None:
        data: dict[str, Any] = event.data
        session_ids = [uuid.UUID(str(sid)) for sid in data.get("session_ids") or []]
        user_id = _uuid(event.subject) if event.name == "user.deactivated" else None
        self.add(session_ids, _timestamp(data.get("forget_after")), user_id=user_id)
        logger.info(
            "revoked %d session(s) of user %s (%s)", len(session_ids), event.subject, event.name
        )


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class RevocationFeed:
    """The broker consumer and the seeding from auth, run by the gateway's lifespan."""

    def __init__(
        self,
        revoked: RevokedSessions,
        backends: Backends,
        *,
        amqp_url: str,
        queue: str,
        internal_token: str,
        timeout_seconds: float,
        queue_expires_seconds: float | None = None,
    ) -> None:
        self.revoked = revoked
        # Each replica has a queue of its own: the broker deletes it once unused this long.
        self._queue_expires_seconds = queue_expires_seconds
        self._backends = backends
        self._internal_token = internal_token
        self._timeout = timeout_seconds
        self._broker = Broker(amqp_url, connection_name="bugtracker-gateway") if amqp_url else None
        self._queue = queue
        self._seeded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def on_event(self, event: CloudEvent) -> None:
        self.revoked.add_event(event)

    def start(self) -> None:
        if self._broker is None:
            logger.warning("no AMQP URL: revocations reach this gateway only at start")
        else:
            self._broker.add_consumer(
                self._queue,
                REVOCATION_EVENTS,
                self.on_event,
                expires_seconds=self._queue_expires_seconds,
            )
            self._broker.start()
        self._task = asyncio.create_task(self._seed_forever(), name="revocations-seed")

    @property
    def state(self) -> str:
        """`ok` once seeded and consuming; `unavailable` otherwise (shown by /health)."""
        consuming = self._broker is None or (
            self._broker.is_ready and not self._broker.stalled_consumers()
        )
        return "ok" if self._seeded.is_set() and consuming else "unavailable"

    @property
    def seeded(self) -> bool:
        """The list has been loaded from auth at least once (events may lag behind)."""
        return self._seeded.is_set()

    async def wait_ready(self, timeout_seconds: float) -> None:
        """Give the feed a moment at start, so the first requests already see revocations."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await self._seeded.wait()
                if self._broker is not None:
                    await self._broker.wait_connected()

    async def _seed_forever(self) -> None:
        if self._broker is not None:
            # The queue is bound first: a revocation after this point is queued for us.
            await self._broker.wait_connected()
        delay = 0.2
        while True:
            try:
                await self.seed()
                return
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                logger.warning("seeding revocations failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def seed(self) -> None:
        async with self._backends.session("auth").get(
            self._backends.url("auth", SEED_PATH),
            headers={"X-Internal-Token": self._internal_token},
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            raise_for_status=True,
        ) as response:
            document: dict[str, Any] = await response.json()
        for item in document["items"]:
            self.revoked.add(
                [uuid.UUID(str(item["session_id"]))], _timestamp(item.get("forget_after"))
            )
        self._seeded.set()
        logger.info("revocation list seeded with %d session(s)", len(document["items"]))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._broker is not None:
            await self._broker.close()
