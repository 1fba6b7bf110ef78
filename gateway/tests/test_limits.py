"""Rate limits (per user or per IP, stricter on credential endpoints) and header size."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bugtracker_gateway.ratelimit import RateLimiter

from gateway.tests.conftest import Minter

RECOVERY_DEADLINE_SECONDS = 5.0


def parse_item(header: str) -> tuple[str, dict[str, int]]:
    """`"name";a=1;b=2` -> ("name", {"a": 1, "b": 2})."""
    name, *params = header.split(";")
    return name.strip('"'), {k: int(v) for k, v in (p.split("=") for p in params)}


async def test_responses_carry_the_ietf_ratelimit_headers(
    gateway: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    first = await gateway.get("/api/v1/tickets", headers=auth_headers)
    second = await gateway.get("/api/v1/tickets", headers=auth_headers)

    assert parse_item(first.headers["ratelimit-policy"]) == ("default", {"q": 1200, "w": 60})
    name, state = parse_item(second.headers["ratelimit"])
    assert name == "default"
    assert state["r"] == 1198
    assert 0 <= state["t"] <= 60


async def test_over_the_limit_is_429_with_retry_after_then_it_recovers(
    open_gateway: Callable[..., Any], backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(rate_limit="3/second") as gateway:
        answers = [await gateway.get("/api/v1/tickets", headers=auth_headers) for _ in range(4)]

        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        limited = answers[-1]
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["code"] == "rate_limited"
        assert limited.json()["request_id"] == limited.headers["x-request-id"]
        assert 1 <= int(limited.headers["retry-after"]) <= 1
        assert parse_item(limited.headers["ratelimit"])[1]["r"] == 0
        assert parse_item(limited.headers["ratelimit-policy"]) == ("default", {"q": 3, "w": 1})
        assert len(backends["tickets"].proxied()) == 3  # the 4th never reached it

        # Recovery: poll (no fixed sleep) until the window lets the client through.
        deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
        while True:
            again = await gateway.get("/api/v1/tickets", headers=auth_headers)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert again.status_code == 200


async def test_users_are_counted_apart_and_anonymous_callers_by_ip(
    open_gateway: Callable[..., Any], mint: Minter
) -> None:
    ann = {"Authorization": f"Bearer {mint()}"}
    bob = {"Authorization": f"Bearer {mint()}"}
    async with open_gateway(rate_limit="2/minute") as gateway:
        ann_answers = [(await gateway.get("/api/v1/tickets", headers=ann)).status_code]
        ann_answers += [(await gateway.get("/api/v1/tickets", headers=ann)).status_code]
        ann_answers += [(await gateway.get("/api/v1/tickets", headers=ann)).status_code]
        bob_answer = await gateway.get("/api/v1/tickets", headers=bob)
        anonymous = [(await gateway.get("/.well-known/jwks.json")).status_code for _ in range(3)]
        health = [(await gateway.get("/health/live")).status_code for _ in range(5)]

    assert ann_answers == [200, 200, 429]
    assert bob_answer.status_code == 200
    assert anonymous == [200, 200, 429]
    assert health == [200] * 5  # probes are never throttled


async def test_credential_endpoints_have_their_own_stricter_limit(
    open_gateway: Callable[..., Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(auth_rate_limit="2/minute") as gateway:
        logins = [
            await gateway.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})
            for _ in range(3)
        ]
        other = await gateway.post("/api/v1/auth/token", data={"username": "a", "password": "b"})
        api = await gateway.get("/api/v1/users/me", headers=auth_headers)

    assert [r.status_code for r in logins] == [200, 200, 429]
    assert logins[-1].json()["code"] == "rate_limited"
    assert int(logins[-1].headers["retry-after"]) >= 1
    assert parse_item(logins[0].headers["ratelimit-policy"]) == ("credentials", {"q": 2, "w": 60})
    assert other.status_code == 429  # one budget for every credential endpoint
    assert api.status_code == 200


async def test_rate_limiting_can_be_switched_off(
    open_gateway: Callable[..., Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(rate_limit="1/minute", rate_limit_enabled=False) as gateway:
        answers = [await gateway.get("/api/v1/tickets", headers=auth_headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "ratelimit" not in answers[0].headers


async def test_oversized_headers_are_431_and_not_forwarded(
    gateway: httpx.AsyncClient, backends: dict[str, Any], auth_headers: dict[str, str]
) -> None:
    response = await gateway.get(
        "/api/v1/tickets", headers={**auth_headers, "X-Padding": "x" * (17 * 1024)}
    )

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "request_header_fields_too_large"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert backends["tickets"].proxied() == []


async def test_headers_just_under_the_limit_pass(
    open_gateway: Callable[..., Any], auth_headers: dict[str, str]
) -> None:
    async with open_gateway(max_header_bytes=4096) as gateway:
        small = await gateway.get(
            "/api/v1/tickets", headers={**auth_headers, "X-Padding": "x" * 2000}
        )
        big = await gateway.get(
            "/api/v1/tickets", headers={**auth_headers, "X-Padding": "x" * 5000}
        )

    assert small.status_code == 200
    assert big.status_code == 431


@pytest.mark.parametrize("notation", ["5/10 seconds", "3/second", "40/minute"])
async def test_the_counter_decides_as_the_limits_package_would(
    monkeypatch: pytest.MonkeyPatch, notation: str
) -> None:
    """The in-process counter replaced `limits`' sliding-window counter on its in-memory
    storage: the same answers, remaining budgets and reset times, hit by hit."""
    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter

    now = 1_700_000_000.123
    monkeypatch.setattr(time, "time", lambda: now)
    reference = SlidingWindowCounterRateLimiter(MemoryStorage())
    item = parse(notation)
    ours = RateLimiter(notation, "1/minute", clock=lambda: now)
    steps = random.Random(notation)
    # In units of the window / the limit: bursts, a steady pace, and now and then a pause
    # of about three windows; ann sends twice as often as bob.
    unit = item.get_expiry() / item.amount
    pauses = [0.031, 0.13, 0.37, 0.71, 1.13, 1.7, 2.9 * item.amount]
    refused = 0
    for _ in range(600):
        now += unit * steps.choices(pauses, weights=[20, 20, 20, 20, 10, 10, 1])[0]
        client = steps.choice(["ann", "ann", "bob"])
        allowed = await reference.hit(item, "default", client)
        stats = await reference.get_window_stats(item, "default", client)
        decision = ours.hit("default", client)
        assert decision.allowed == allowed
        assert decision.remaining == max(0, stats.remaining)
        expected_reset = max(0 if allowed else 1, math.ceil(stats.reset_time - now))
        assert decision.reset_seconds == expected_reset
        refused += not allowed
    assert refused > 20  # the limit was reached often enough to compare refusals
