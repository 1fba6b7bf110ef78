"""Per-client rate limits with the IETF `RateLimit-Policy` / `RateLimit` headers.

The counting is the `limits` package's sliding-window counter over its in-memory
storage: state lives in this process, so with several gateways each one counts on its
own (docs/adr/0020). A client is the user id of a valid access token (the authentication
middleware, which runs first, puts it in the scope), or else the client's IP address.
The endpoints that take a password or a refresh token have a stricter limit of their own.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from bugtracker_shared.problems import problem_response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
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


class RateLimiter:
    def __init__(self, default: str, credentials: str) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._policies: dict[str, RateLimitItem] = {
            "default": parse(default),
            "credentials": parse(credentials),
        }

    async def hit(self, policy: str, client: str) -> Decision:
        item = self._policies[policy]
        allowed = await self._limiter.hit(item, policy, client)
        stats = await self._limiter.get_window_stats(item, policy, client)
        return Decision(
            allowed=allowed,
            policy=policy,
            limit=item.amount,
            window_seconds=item.get_expiry(),
            remaining=max(0, stats.remaining),
            reset_seconds=max(1 if not allowed else 0, math.ceil(stats.reset_time - time.time())),
        )


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


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
            policy, client = "credentials", "ip:" + _client_ip(scope)
        else:
            user_id = scope.get(USER_ID_SCOPE_KEY)
            client = f"user:{user_id}" if user_id else "ip:" + _client_ip(scope)
            policy = "default"
        decision = await self.limiter.hit(policy, client)
        headers = decision.headers()
        if not decision.allowed:
            response = problem_response(
                429,
                "rate_limited",
                f"Too many requests; try again in {decision.reset_seconds} s.",
                instance=path,
                headers={
                    **{name.decode(): value.decode() for name, value in headers},
                    "Retry-After": str(decision.reset_seconds),
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def remember_user(scope: Scope, user_id: uuid.UUID) -> None:
    scope[USER_ID_SCOPE_KEY] = str(user_id)
