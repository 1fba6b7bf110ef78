from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from bugtracker_auth.infrastructure.keys import KeyStore
from bugtracker_auth.infrastructure.throttle import KEY_PREFIX
from bugtracker_auth.main import create_app
from bugtracker_auth.settings import Settings
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_testkit import app_client
from redis.asyncio import Redis

PASSWORD = "plum lantern orbit quietly 47"
INTERNAL_TOKEN = "internal-test-token"
GATEWAY_ADDRESS = "127.0.0.1"  # uvicorn --forwarded-allow-ips of auth in `make up`

AuthFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def forget_throttling(redis_url: str) -> None:
    """Delete auth's login-throttle keys from the run's Redis: each test starts with no
    failures counted (as a fresh process did with the in-memory throttle)."""
    client = Redis.from_url(redis_url)
    try:
        stale = [key async for key in client.scan_iter(match=f"{KEY_PREFIX}*", count=1000)]
        if stale:
            await client.delete(*stale)
    finally:
        await client.aclose()


@pytest.fixture
async def auth_settings(infra: Stack, tmp_path: Path) -> Settings:
    """Auth as `make up` runs it: the run's database, broker and Redis (the login
    throttle's counters, shared by replicas: docs/adr/0037)."""
    migrated(infra, "auth")
    await truncate_schema(infra, "auth")
    assert infra.redis is not None
    await forget_throttling(infra.redis.url)
    return Settings(
        database_url=infra.database_url("auth"),
        amqp_url=infra.rabbitmq.url,
        redis_url=infra.redis.url,
        keys_dir=tmp_path / "keys",
        internal_token=INTERNAL_TOKEN,
    )


@pytest.fixture
def open_auth(auth_settings: Settings) -> AuthFactory:
    """An auth app on the test database, with some settings changed, called from the
    address `peer` (127.0.0.1: where the gateway is in `make up`). uvicorn's proxy headers are
    trusted from the gateway's address only, as every launch of auth sets it (docs/adr/0027)."""

    @asynccontextmanager
    async def open_(
        *, peer: str = GATEWAY_ADDRESS, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(auth_settings.model_copy(update=overrides))
        async with app_client(app, client=peer, forwarded_allow_ips=GATEWAY_ADDRESS) as client:
            # Ready means connected to the broker too: closing an app whose broker is still
            # connecting can outlast the lifespan's shutdown timeout.
            deadline = time.monotonic() + 15
            while (await client.get("/health/ready")).status_code != 200:
                assert time.monotonic() < deadline, "auth did not become ready"
                await asyncio.sleep(0.02)
            yield client

    return open_


@pytest.fixture
async def auth_client(open_auth: AuthFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with open_auth() as client:
        yield client


class Account:
    """A registered user with one logged-in session."""

    def __init__(self, client: httpx.AsyncClient, email: str, tokens: dict[str, Any]) -> None:
        self.client = client
        self.email = email
        self.tokens = tokens
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        self.user_id = uuid.UUID(claims["sub"])
        self.session_id = uuid.UUID(claims["sid"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return Account(client, email, response.json())


async def register_and_login(
    client: httpx.AsyncClient, name: str = "ann", password: str = PASSWORD
) -> Account:
    email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
    created = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": name.title()},
    )
    assert created.status_code == 201, created.text
    return await login(client, email, password)


@pytest.fixture
def sign(auth_settings: Settings) -> Callable[..., str]:
    """Signs arbitrary claims and headers with the auth service's own current key (read
    after the app has started and created it)."""

    def sign_(
        claims: dict[str, Any], *, headers: dict[str, Any] | None = None, algorithm: str = "EdDSA"
    ) -> str:
        keys = KeyStore(auth_settings.keys_dir)
        keys.load(create_if_missing=False)
        head = {"kid": keys.current.kid, "typ": "at+jwt"} | (headers or {})
        return jwt.encode(claims, keys.current.private_key, algorithm=algorithm, headers=head)

    return sign_


def claims_of(account: Account, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "bugtracker-auth",
        "aud": "bugtracker",
        "sub": str(account.user_id),
        "sid": str(account.session_id),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
        "role": "member",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


class Kit:
    """Helpers for the tests of this package (a fixture: test modules are not importable
    from one another under --import-mode=importlib)."""

    PASSWORD = PASSWORD
    INTERNAL_TOKEN = INTERNAL_TOKEN
    Account = Account
    login = staticmethod(login)
    register_and_login = staticmethod(register_and_login)
    claims_of = staticmethod(claims_of)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
