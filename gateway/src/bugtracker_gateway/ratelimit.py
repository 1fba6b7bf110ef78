"""Per-client rate limits with the IETF `RateLimit-Policy` / `RateLimit` headers.

The counting is a sliding-window counter: per client, the count of the current fixed
window plus the previous window's count, weighted by the share of the previous window
the sliding window still covers (the algorithm and the numbers of the `limits` package's
strategy of that name, whose notation the settings keep: "1200/minute"). The counters
are plain integers in a dict of this process, updated in place: one event loop needs no
lock, and nothing is scheduled per hit (docs/adr/0024). State lives in this process, so
with several gateways each one counts on its own (docs/adr/0020). A client is the user id
of a valid access token (the authentication middleware, which runs first, puts it in the
scope), or else the client's IP address (bugtracker_gateway.forwarding decides it). The
endpoints that take a password or a refresh token have a stricter limit of their own, and
the answers 401 of the authentication middleware a per-IP budget of theirs
(`auth_failures`), so a flood of missing or invalid tokens is held back too.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bugtracker_shared.problems import problem_response
from limits import parse
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
UNLIMITED_PREFIX = "/health"  # probes and monitoring must never be throttled
USER_ID_SCOPE_KEY = "bugtracker.user_id"


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

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
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
        decision = self.limiter.hit(policy, client)
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
