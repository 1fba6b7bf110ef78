"""The login throttle in Redis (docs/adr/0037), on the test run's redis-server: the
policy's scenarios, one budget across replicas, keys that expire and name no email, and
logins that fail closed (503) when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from bugtracker_auth.bootstrap import REDIS_CLIENT_NAME
from bugtracker_auth.domain.errors import RateLimitedError
from bugtracker_auth.infrastructure.throttle import (
    KEY_PREFIX,
    RedisLoginThrottle,
    ThrottlePolicy,
    account_key,
)
from bugtracker_auth.main import create_app
from bugtracker_auth.settings import Settings
from bugtracker_devstack.stack import Stack
from bugtracker_testkit import app_client
from redis.asyncio import Redis

from services.auth.tests.throttle_scenarios import (
    SCENARIOS,
    Clock,
    Scenario,
    scenario_ids,
)

# Needs the run's Redis (and, for the app, its PostgreSQL and RabbitMQ).
pytestmark = pytest.mark.integration

PASSWORD = "plum lantern orbit quietly 47"
AuthFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def redis(infra: Stack) -> AsyncIterator[Redis]:
    assert infra.redis is not None
    client = Redis.from_url(infra.redis.url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key space of this test's own (the scenarios reuse addresses and emails)."""
    return f"{KEY_PREFIX}test-{uuid.uuid4().hex[:12]}:"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=scenario_ids)
async def test_the_redis_throttle_follows_the_policy(
    scenario: Scenario, redis: Redis, prefix: str
) -> None:
    await scenario(
        lambda policy, clock: RedisLoginThrottle(redis, policy, clock=clock, prefix=prefix)
    )


async def test_two_replicas_share_one_budget(infra: Stack, prefix: str) -> None:
    assert infra.redis is not None
    clients = [Redis.from_url(infra.redis.url) for _ in range(2)]
    try:
        clock = Clock()
        a, b = (RedisLoginThrottle(c, clock=clock, prefix=prefix) for c in clients)
        # The per-IP window: failures through A and B add up.
        for n in range(10):
            replica = a if n % 2 else b
            await replica.check("203.0.113.1", f"u{n}@example.com")
            await replica.failed("203.0.113.1", f"u{n}@example.com")
        for replica in (a, b):
            with pytest.raises(RateLimitedError):
                await replica.check("203.0.113.1", "new@example.com")
        # The pair's delay: five failures through A hold the pair back on B.
        for _ in range(5):
            await a.failed("198.51.100.7", "ann@example.com")
        with pytest.raises(RateLimitedError):
            await b.check("198.51.100.7", "ann@example.com")
        # A success through B clears it for A, and makes the client known everywhere.
        await b.succeeded("198.51.100.7", "ann@example.com")
        await a.check("198.51.100.7", "ann@example.com")
        # The spread: ten addresses failing through either replica hold back newcomers on
        # both; the known client passes on both.
        for n in range(10):
            await (a if n % 2 else b).failed(f"192.0.2.{n}", "ann@example.com")
        for replica in (a, b):
            with pytest.raises(RateLimitedError):
                await replica.check("198.51.100.99", "ann@example.com")
            await replica.check("198.51.100.7", "ann@example.com")
    finally:
        for client in clients:
            await client.aclose()


async def test_every_key_expires_and_names_no_email(redis: Redis, prefix: str) -> None:
    policy = ThrottlePolicy()
    throttle = RedisLoginThrottle(redis, policy, prefix=prefix)
    await throttle.failed("203.0.113.1", "ann@example.com")
    await throttle.failed(None, "ann@example.com")
    await throttle.succeeded("198.51.100.7", "ann@example.com")

    keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{prefix}*")])
    account = account_key("ann@example.com")
    assert keys == sorted(
        f"{prefix}{name}"
        for name in (
            "ip:203.0.113.1",
            f"pair:{account}:203.0.113.1",
            f"pair:{account}:-",
            f"spread:{account}",
            f"known:{account}:198.51.100.7",
        )
    )
    expected = {
        "ip": policy.ip_window_seconds,
        "pair": policy.pair_memory_seconds,
        "spread": policy.spread_window_seconds,
        "known": policy.known_client_seconds,
    }
    for key in keys:
        ttl_ms = await redis.pttl(key)
        kind = key.removeprefix(prefix).split(":")[0]
        assert 0 < ttl_ms <= expected[kind] * 1000, key
        assert ttl_ms > expected[kind] * 1000 - 60_000, key
    # The email is nowhere: neither in a key nor in a value.
    values: list[bytes] = []
    for key in keys:
        kind = await redis.type(key)
        if kind == b"zset":
            values += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == b"hash":
            values += list((await redis.hgetall(key)).values())
        else:
            values.append(await redis.get(key) or b"")
    assert not any(b"ann" in value for value in values)
    assert not any("ann" in key for key in keys)


async def test_the_production_key_space_is_namespaced(redis: Redis) -> None:
    throttle = RedisLoginThrottle(redis)
    email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    assert set(throttle.keys_of("203.0.113.1", email).values()) == {
        "bugtracker:auth:throttle:ip:203.0.113.1",
        f"bugtracker:auth:throttle:pair:{account_key(email)}:203.0.113.1",
        f"bugtracker:auth:throttle:spread:{account_key(email)}",
        f"bugtracker:auth:throttle:known:{account_key(email)}:203.0.113.1",
    }


async def test_auth_names_its_redis_connections_and_closes_them_at_shutdown(
    open_auth: AuthFactory, redis: Redis
) -> None:
    async def auth_connections() -> int:
        return sum(c.get("name") == REDIS_CLIENT_NAME for c in await redis.client_list())

    async with open_auth() as client:
        failed = await client.post(
            "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        assert failed.status_code == 401
        assert await auth_connections() >= 1
    deadline = time.monotonic() + 5
    while await auth_connections():
        assert time.monotonic() < deadline, "auth left its Redis connections open"
        await asyncio.sleep(0.02)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def started(client: httpx.AsyncClient) -> dict[str, str]:
    """Wait until the app's broker is connected; its readiness checks then."""
    deadline = time.monotonic() + 15
    while True:
        checks: dict[str, str] = (await client.get("/health/ready")).json()["checks"]
        if checks.get("broker") == "ok":
            return checks
        assert time.monotonic() < deadline, "auth did not connect to the broker"
        await asyncio.sleep(0.02)


async def test_readiness_reports_the_throttle_store(auth_client: httpx.AsyncClient) -> None:
    ready = await auth_client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["throttle_store"] == "ok"


async def test_without_redis_logins_fail_closed_with_503(
    open_auth: AuthFactory, auth_settings: Settings
) -> None:
    # A session opened while Redis answers ...
    async with open_auth() as working:
        email = f"ann-{uuid.uuid4().hex[:6]}@example.com"
        created = await working.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": "Ann"},
        )
        assert created.status_code == 201, created.text
        tokens = (
            await working.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        ).json()

    # ... then an auth whose Redis cannot be reached.
    down = auth_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    async with app_client(create_app(down), client="127.0.0.1") as client:
        checks = await started(client)
        assert checks["throttle_store"] == "unavailable"
        ready = await client.get("/health/ready")
        assert ready.status_code == 503  # no login can be served: not ready

        began = time.monotonic()
        refused = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert time.monotonic() - began < 3  # within the store's timeout, not a hang
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["code"] == "throttle_unavailable"
        # A wrong password gets the same answer: nothing is learnt without the counters.
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong but long enough"}
        )
        assert (wrong.status_code, wrong.json()["code"]) == (503, "throttle_unavailable")
        # The password change is throttled too, so it is refused as well ...
        changed = await client.post(
            "/api/v1/users/me/password",
            json={"current_password": PASSWORD, "new_password": "another long password 99"},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert (changed.status_code, changed.json()["code"]) == (503, "throttle_unavailable")
        # ... while what needs no password check still works.
        me = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 200
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
