"""Rate limits shared by every gateway replica through the test run's Redis
(docs/adr/0035), and the fallback to counting in the replica while the store is out."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bugtracker_devstack.redis import Redis
from bugtracker_devstack.stack import Stack
from bugtracker_gateway.ratelimit import LOCAL_STORE_DOWN, SHARED

from gateway.tests.conftest import Minter, free_port
from gateway.tests.test_limits import parse_item

pytestmark = pytest.mark.integration

RECOVERY_DEADLINE_SECONDS = 10.0


async def test_two_gateways_share_one_budget(
    open_gateway: Callable[..., Any], infra: Stack, mint: Minter
) -> None:
    assert infra.redis is not None
    ann = {"Authorization": f"Bearer {mint()}"}
    shared = {"redis_url": infra.redis.url, "rate_limit": "5/minute"}
    async with open_gateway(**shared) as a, open_gateway(**shared) as b:
        on_a = [await a.get("/api/v1/tickets", headers=ann) for _ in range(3)]
        on_b = [await b.get("/api/v1/tickets", headers=ann) for _ in range(3)]
        health = (await a.get("/health")).json()

    assert [r.status_code for r in on_a + on_b] == [200] * 5 + [429]
    # Each answer tells the budget left across both gateways.
    assert [parse_item(r.headers["ratelimit"])[1]["r"] for r in on_a + on_b] == [4, 3, 2, 1, 0, 0]
    refused = on_b[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert parse_item(refused.headers["ratelimit-policy"]) == ("default", {"q": 5, "w": 60})
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert health["rate_limits"] == SHARED


async def test_credential_and_401_budgets_are_shared_too(
    open_gateway: Callable[..., Any], infra: Stack
) -> None:
    assert infra.redis is not None
    # Limits of their own, so that no other test's counts (same client address) mix in.
    shared = {
        "redis_url": infra.redis.url,
        "auth_rate_limit": "3/37 seconds",
        "auth_failure_rate_limit": "3/41 seconds",
    }
    login = {"email": "a@b.c", "password": "x"}
    async with open_gateway(**shared) as a, open_gateway(**shared) as b:
        logins = [await gw.post("/api/v1/auth/login", json=login) for gw in (a, b, a, b)]
        failures = [await gw.get("/api/v1/projects") for gw in (b, a, b, a)]

    assert [r.status_code for r in logins] == [200, 200, 200, 429]
    assert [r.status_code for r in failures] == [401, 401, 401, 429]
    assert parse_item(failures[-1].headers["ratelimit-policy"])[0] == "auth_failures"


async def test_without_the_store_the_gateway_counts_alone_and_says_so(
    open_gateway: Callable[..., Any], mint: Minter
) -> None:
    ann = {"Authorization": f"Bearer {mint()}"}
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with open_gateway(redis_url=closed, rate_limit="2/minute") as gateway:
        health = await gateway.get("/health")
        ready = await gateway.get("/health/ready")
        answers = [await gateway.get("/api/v1/tickets", headers=ann) for _ in range(3)]

    assert health.status_code == 200  # an outage of the store fails open: still healthy
    assert health.json()["status"] == "ok"
    assert health.json()["rate_limits"] == LOCAL_STORE_DOWN
    assert ready.status_code == 200
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert parse_item(answers[-1].headers["ratelimit"])[1]["r"] == 0


async def test_a_silent_store_costs_one_timeout_not_one_per_request(
    open_gateway: Callable[..., Any], mint: Minter
) -> None:
    """A store that accepts connections and never answers: the first request waits for
    the timeout, then the replica counts alone without asking the store again."""
    connections = 0
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ann = {"Authorization": f"Bearer {mint()}"}
    try:
        async with open_gateway(
            redis_url=f"redis://127.0.0.1:{port}/0",
            redis_timeout_seconds=0.2,
            redis_retry_seconds=60,
            rate_limit="3/minute",
        ) as gateway:
            seen_at_start = connections  # the ping at start timed out
            started = time.monotonic()
            answers = [await gateway.get("/api/v1/tickets", headers=ann) for _ in range(20)]
            elapsed = time.monotonic() - started
            health = (await gateway.get("/health")).json()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

    assert seen_at_start == 1
    assert connections == 1  # nothing more asked the store
    assert elapsed < 2.0  # not 20 timeouts
    assert [r.status_code for r in answers] == [200] * 3 + [429] * 17
    assert health["rate_limits"] == LOCAL_STORE_DOWN


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    """A Redis of this test's own (stopped and started at will), not started yet; the
    run's shared one is left alone. Its directory is readable by the `redis` user."""
    base = Path(tempfile.mkdtemp(prefix="bugtracker-test-redis-"))
    base.chmod(0o755)
    redis = Redis(base=base / "redis", port=free_port())
    try:
        yield redis
    finally:
        redis.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _rate_limits_state(gateway: Any, expected: str) -> str:
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    while True:
        state: str = (await gateway.get("/health")).json()["rate_limits"]
        if state == expected or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.05)


async def test_the_limits_are_shared_again_once_the_store_is_back(
    open_gateway: Callable[..., Any], own_redis: Redis, mint: Minter
) -> None:
    ann = {"Authorization": f"Bearer {mint()}"}
    bob = {"Authorization": f"Bearer {mint()}"}
    settings = {"redis_url": own_redis.url, "redis_retry_seconds": 0.1, "rate_limit": "4/minute"}
    async with open_gateway(**settings) as a, open_gateway(**settings) as b:
        assert (await a.get("/health")).json()["rate_limits"] == LOCAL_STORE_DOWN
        # Down: each replica counts on its own (fail open to per-replica budgets).
        local = [await gw.get("/api/v1/tickets", headers=ann) for gw in (a, a, a, b, b, b)]

        await asyncio.to_thread(own_redis.start)
        assert await _rate_limits_state(a, SHARED) == SHARED
        assert await _rate_limits_state(b, SHARED) == SHARED
        shared = [await gw.get("/api/v1/tickets", headers=bob) for gw in (a, b, a, b, a)]

        # Down again, mid-flight: the next request is still served, counted locally.
        await asyncio.to_thread(own_redis.stop)
        after = await a.get("/api/v1/tickets", headers=bob)
        state_after = (await a.get("/health")).json()["rate_limits"]

    assert [r.status_code for r in local] == [200] * 6
    assert [r.status_code for r in shared] == [200] * 4 + [429]
    assert after.status_code == 200
    assert state_after == LOCAL_STORE_DOWN
