"""Event streams at the gateway: a budget of their own, a cap per user, an end.

An event stream (`GET /api/v1/notifications/stream`) holds a backend connection for as
long as it lasts. Streams therefore take their connections from a pool of their own
(`Backends.stream_session`, at most `stream_connection_limit` per gateway replica), so
ordinary requests and the health probes never wait behind them; a user may hold
`stream_limit_per_user` streams at once, and the next one is refused before it takes a
connection (429 `too_many_streams`). A stream ends — its response is finished cleanly and
the client reconnects with a fresh token — at the earliest of: its access token's `exp`,
`stream_max_lifetime_seconds` after it opened, the revocation of its session or the
deactivation of its user (the revocation list tells `Streams`), the end of the backend's
stream, the client leaving. See docs/adr/0026.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection

import jwt
from bugtracker_shared.problems import ProblemError
from bugtracker_shared.tokens import Principal
from starlette.types import Scope

from bugtracker_gateway.auth import PRINCIPAL_SCOPE_KEY

logger = logging.getLogger("bugtracker.gateway.streams")

# The API's event streams: these requests take a connection from the streams' pool.
STREAM_PATHS = frozenset({"/api/v1/notifications/stream"})
RETRY_AFTER_FULL_SECONDS = 5


def is_stream_request(method: str, path: str) -> bool:
    return method == "GET" and path in STREAM_PATHS


class OpenStream:
    """One stream being relayed: whose it is, when it must end at the latest, and the
    event that ends it earlier."""

    __slots__ = ("deadline", "ended", "reason", "session_id", "user_id")

    def __init__(
        self, user_id: uuid.UUID | None, session_id: uuid.UUID | None, deadline: float
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.deadline = deadline  # wall-clock time
        self.ended = asyncio.Event()
        self.reason = ""

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


def _expiry(principal: Principal) -> float | None:
    """The `exp` of the principal's access token (already verified by the token check)."""
    try:
        claims = jwt.decode(principal.token, options={"verify_signature": False})
        return float(claims["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


class Streams:
    """The streams this gateway replica relays, by user and by session."""

    def __init__(
        self,
        *,
        per_user_limit: int,
        total_limit: int,
        max_lifetime_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_user_limit = per_user_limit
        self.total_limit = total_limit
        self.max_lifetime_seconds = max_lifetime_seconds
        self._clock = clock
        self._open: set[OpenStream] = set()
        self._by_user: dict[uuid.UUID, set[OpenStream]] = {}
        self._by_session: dict[uuid.UUID, set[OpenStream]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def count(self, user_id: uuid.UUID) -> int:
        return len(self._by_user.get(user_id, ()))

    def open(self, scope: Scope) -> OpenStream:
        """Register a new stream of the request's caller, or refuse it: 429 when the
        caller already holds their share, 503 when the replica's budget is spent."""
        principal: Principal | None = scope.get(PRINCIPAL_SCOPE_KEY)
        if len(self._open) >= self.total_limit:
            logger.warning("refused an event stream: %d streams open", len(self._open))
            raise ProblemError(
                503,
                "too_many_streams",
                "This gateway relays as many event streams as it can; try again shortly.",
                headers={"Retry-After": str(RETRY_AFTER_FULL_SECONDS)},
            )
        now = self._clock()
        deadline = now + self.max_lifetime_seconds
        if principal is None:
            stream = OpenStream(None, None, deadline)
        else:
            if self.count(principal.user_id) >= self.per_user_limit:
                raise ProblemError(
                    429,
                    "too_many_streams",
                    f"At most {self.per_user_limit} event streams may be open at once; "
                    "close one before opening another.",
                    extra={"limit": self.per_user_limit},
                )
            expires_at = _expiry(principal)
            if expires_at is not None:
                deadline = min(deadline, expires_at)
            stream = OpenStream(principal.user_id, principal.session_id, deadline)
            self._by_user.setdefault(principal.user_id, set()).add(stream)
            self._by_session.setdefault(principal.session_id, set()).add(stream)
        self._open.add(stream)
        return stream

    def close(self, stream: OpenStream) -> None:
        """Forget a stream that has ended (idempotent)."""
        self._open.discard(stream)
        for index, key in ((self._by_user, stream.user_id), (self._by_session, stream.session_id)):
            if key is None:
                continue
            streams = index.get(key)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del index[key]

    def remaining_seconds(self, stream: OpenStream) -> float:
        return max(0.0, stream.deadline - self._clock())

    def revoked(self, session_ids: Collection[uuid.UUID], user_id: uuid.UUID | None) -> None:
        """End the streams of revoked sessions, and every stream of a deactivated user (a
        listener of the revocation list)."""
        ended = 0
        for session_id in session_ids:
            for stream in self._by_session.get(session_id, ()):
                stream.end("session_revoked")
                ended += 1
        if user_id is not None:
            for stream in self._by_user.get(user_id, ()):
                stream.end("user_deactivated")
                ended += 1
        if ended:
            logger.info("ending %d event stream(s) of revoked sessions", ended)
