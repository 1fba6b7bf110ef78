"""Helpers for the services' own tests (no production code imports this)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy (returned), or fail at the deadline:
    for outcomes that arrive asynchronously, such as an event's effect."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)  # the poll interval, not a wait for a fixed duration


# Any JSON Web Token: a base64url JSON header, a dot, a base64url JSON payload (for
# checking that none reaches a log).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, called in-process through httpx."""
    from asgi_lifespan import LifespanManager

    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client


class TokenMinter:
    """Signs access tokens like the auth service does, with a throw-away Ed25519 key."""

    def __init__(self, *, issuer: str = "bugtracker-auth", audience: str = "bugtracker") -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.issuer = issuer
        self.audience = audience
        self._key = Ed25519PrivateKey.generate()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"

    def jwks(self) -> dict[str, Any]:
        from jwt.algorithms import OKPAlgorithm

        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    async def fetch_jwks(self) -> dict[str, Any]:
        return self.jwks()

    def mint(
        self,
        user_id: uuid.UUID,
        *,
        role: str = "member",
        ttl_seconds: int = 600,
        **overrides: Any,
    ) -> str:
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ttl_seconds,
            "role": role,
        }
        claims.update(overrides)
        return jwt.encode(
            claims, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "at+jwt"}
        )
