"""Per-client rate limits with the IETF `RateLimit-Policy` / `RateLimit` headers.

The counting is a sliding-window counter: per client, the count of the current fixed
window plus the previous window's count, weighted by the share of the previous window
the sliding window still covers (the `limits` package's strategy of that name, whose
notation the settings keep: "1200/minute").

With a store configured (`redis_url`), every gateway replica counts in the same Redis
through `limits`' own strategy and storage (docs/adr/0035), so a client has its budget
once, however many replicas there are. Without one, or while the store is unreachable,
the counters are plain integers in a dict of this process, updated in place (one event
loop needs no lock, nothing is scheduled per hit; docs/adr/0024): each replica then
counts on its own (docs/adr/0020); the gateway fails open to per-replica budgets rather
than fail requests, and a single background probe brings the store back. A client is the user id
of a valid access token (the authentication middleware, which runs first, puts it in the
scope), or else the client's IP address (bugtracker_gateway.forwarding decides it). The
endpoints that take a password or a refresh token have a stricter limit of their own, and
the answers 401 of the authentication middleware a per-IP budget of theirs
(`auth_failures`), so a flood of missing or invalid tokens is held back too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bugtracker_shared.problems import problem_response
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CREDENTIAL_ENDPOINTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
    }
)
logger = logging.getLogger("bugtracker.gateway.ratelimit")

UNLIMITED_PREFIX = "/health"  # probes and monitoring must never be throttled
USER_ID_SCOPE_KEY = "bugtracker.user_id"
# The limits' state, as /health shows it.
SHARED = "shared"
LOCAL = "local"  # no store configured: each replica counts on its own
LOCAL_STORE_DOWN = "local (store unavailable)"  # failed open until the store is back
OFF = "off"  # rate limiting switched off
STORE_ERRORS = (StorageError, RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: str
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """draft-ietf-httpapi-ratelimit-headers (structured fields: quota, window,
        remaining, seconds until the quota is restored)."""
        return [
            (
                b"ratelimit-policy",
                f'"{self.policy}";q={self.limit};w={self.window_seconds}'.encode(),
            ),
            (
                b"ratelimit",
                f'"{self.policy}";r={self.remaining};t={self.reset_seconds}'.encode(),
            ),
        ]


class _Counter:
    """One client's hits in the current fixed window (`index`) and the one before."""

    __slots__ = ("current", "index", "previous")

    def __init__(self, index: int) -> None:
        self.index = index
        self.previous = 0
        self.current = 0


class _Policy:
    def __init__(self, name: str, notation: str) -> None:
        item = parse(notation)
        self.item = item
        self.name = name
        self.limit = item.amount
        self.window = item.get_expiry()
        self.counters: dict[str, _Counter] = {}
        self._next_sweep = 0.0

    def counter(self, client: str, now: float) -> _Counter:
        index = int(now / self.window)
        if now >= self._next_sweep:  # forget clients with no hit in the last two windows
            self.counters = {c: n for c, n in self.counters.items() if n.index >= index - 1}
            self._next_sweep = now + self.window
        counter = self.counters.get(client)
        if counter is None:
            counter = self.counters[client] = _Counter(index)
        elif counter.index != index:
            counter.previous = counter.current if counter.index == index - 1 else 0
            counter.current = 0
            counter.index = index
        return counter


class RateLimiter:
    def __init__(
        self,
        default: str,
        credentials: str,
        clock: Callable[[], float] = time.time,
        *,
        auth_failures: str = "60/minute",
    ) -> None:
        self._policies = {
            "default": _Policy("default", default),
            "credentials": _Policy("credentials", credentials),
            "auth_failures": _Policy("auth_failures", auth_failures),
        }
        self._clock = clock

    def item(self, policy: str) -> RateLimitItem:
        """The policy's limit in `limits`' terms (the shared counter's)."""
        return self._policies[policy].item

    def hit(self, policy: str, client: str) -> Decision:
        """Count one request of `client` if its budget allows it (a refused one is not
        counted), and say what is left."""
        rules = self._policies[policy]
        now = self._clock()
        counter = rules.counter(client, now)
        window = rules.window
        left = (1 - (now / window) % 1) * window  # to the end of the current fixed window
        weighted = counter.previous * left / window + counter.current
        allowed = math.floor(weighted) + 1 <= rules.limit
        if allowed:
            counter.current += 1
            weighted += 1
        # When the count next drops: a hit of the previous window leaves the sliding one,
        # or the current window ends.
        reset = 0.0
        if counter.previous or counter.current:
            reset = min(
                left % (window / counter.previous) if counter.previous else math.inf,
                left % window if counter.current else math.inf,
            )
        return Decision(
            allowed=allowed,
            policy=policy,
            limit=rules.limit,
            window_seconds=window,
            remaining=max(0, rules.limit - math.floor(weighted)),
            reset_seconds=max(0 if allowed else 1, math.ceil(reset)),
        )


class Limits:
    """The rate limits the middlewares ask: counted in the shared store when one is
    configured and answers, else by `local` (this process's counter).

    A store error or timeout (`timeout_seconds` per call, connecting included) does not
    fail the request: it is counted locally, the outage is logged once, and from then on
    requests stay local, without touching the store, until one background probe (a PING
    every `retry_seconds`) finds it back."""

    def __init__(
        self,
        local: RateLimiter,
        store_url: str = "",
        *,
        timeout_seconds: float = 0.1,
        retry_seconds: float = 2.0,
        key_prefix: str = "bugtracker-gateway",
        enabled: bool = True,
    ) -> None:
        self.local = local
        self.enabled = enabled
        self._retry_seconds = retry_seconds
        self._store_down = False
        self._probe: asyncio.Task[None] | None = None
        self._pool: ConnectionPool | None = None
        self._storage: RedisStorage | None = None
        self._counter: SlidingWindowCounterRateLimiter | None = None
        if store_url and enabled:
            self._pool = ConnectionPool.from_url(
                store_url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
            )
            self._storage = RedisStorage(
                store_url if store_url.startswith("async+") else "async+" + store_url,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed on to redis-py
            )
            self._counter = SlidingWindowCounterRateLimiter(self._storage)

    @property
    def state(self) -> str:
        if not self.enabled:
            return OFF
        if self._counter is None:
            return LOCAL
        return LOCAL_STORE_DOWN if self._store_down else SHARED

    async def open(self) -> None:
        """Check the store once at start, so /health and the log tell at once."""
        if self._pool is not None:
            try:
                await self._ping()
            except STORE_ERRORS as exc:
                self._store_failed(exc)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._pool is not None:
            await self._pool.aclose()

    async def hit(self, policy: str, client: str) -> Decision:
        """Count one request of `client` if its budget allows it (a refused one is not
        counted), and say what is left."""
        counter = self._counter
        if counter is None or self._store_down:
            return self.local.hit(policy, client)
        item = self.local.item(policy)
        try:
            allowed = await counter.hit(item, policy, client)
            stats = await counter.get_window_stats(item, policy, client)
        except STORE_ERRORS as exc:
            self._store_failed(exc)
            return self.local.hit(policy, client)
        return Decision(
            allowed=allowed,
            policy=policy,
            limit=item.amount,
            window_seconds=item.get_expiry(),
            remaining=max(0, stats.remaining),
            reset_seconds=max(0 if allowed else 1, math.ceil(stats.reset_time - time.time())),
        )

    async def _ping(self) -> None:
        assert self._pool is not None  # noqa: S101 (only called with a store)
        await Redis(connection_pool=self._pool).ping()

    def _store_failed(self, exc: BaseException) -> None:
        if self._store_down:
            return  # requests in flight when it went: logged once already
        self._store_down = True
        logger.warning(
            "rate limit store unavailable (%r): counting in this replica alone until it "
            "answers again (checked every %s s)",
            exc,
            self._retry_seconds,
        )
        self._probe = asyncio.create_task(self._wait_for_store(), name="ratelimit-store-probe")

    async def _wait_for_store(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            try:
                await self._ping()
            except STORE_ERRORS:
                continue
            break
        self._store_down = False
        self._probe = None
        logger.warning("rate limit store is back: the limits are shared by every replica again")


def client_ip(scope: Scope) -> str:
    """The client address as bugtracker_gateway.forwarding left it in the scope."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def rate_limited(decision: Decision, instance: str) -> Response:
    """429 `rate_limited` with the RateLimit headers of the exhausted policy."""
    return problem_response(
        429,
        "rate_limited",
        f"Too many requests; try again in {decision.reset_seconds} s.",
        instance=instance,
        headers={
            **{name.decode(): value.decode() for name, value in decision.headers()},
            "Retry-After": str(decision.reset_seconds),
        },
    )


class RateLimitMiddleware:
    """Counts the request against its client's limit; over it, 429 `rate_limited`."""

    def __init__(self, app: ASGIApp, limiter: Limits) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNLIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        if (scope["method"], path) in CREDENTIAL_ENDPOINTS:
            policy, client = "credentials", "ip:" + client_ip(scope)
        else:
            user_id = scope.get(USER_ID_SCOPE_KEY)
            client = f"user:{user_id}" if user_id else "ip:" + client_ip(scope)
            policy = "default"
        decision = await self.limiter.hit(policy, client)
        headers = decision.headers()
        if not decision.allowed:
            await rate_limited(decision, path)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def remember_user(scope: Scope, user_id: uuid.UUID) -> None:
    scope[USER_ID_SCOPE_KEY] = str(user_id)
