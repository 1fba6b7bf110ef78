"""The login throttle's policy as scenarios, run against every implementation: in memory
(unit/test_password_policy_and_throttle.py) and in Redis
(integration/test_redis_throttle.py). Each takes `make(policy, clock)`, which builds a fresh
throttle reading the given clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from bugtracker_auth.application.ports import LoginThrottle
from bugtracker_auth.domain.errors import RateLimitedError
from bugtracker_auth.infrastructure.throttle import ThrottlePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MakeThrottle = Callable[[ThrottlePolicy, Clock], LoginThrottle]
Scenario = Callable[[MakeThrottle], Awaitable[None]]


async def ip_failures_are_limited_in_a_sliding_minute(make: MakeThrottle) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(), clock)
    for n in range(10):
        await throttle.check("203.0.113.1", f"u{n}@example.com")
        await throttle.failed("203.0.113.1", f"u{n}@example.com")
        clock.now += 1
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check("203.0.113.1", "new@example.com")
    assert refused.value.headers == {"Retry-After": "50"}
    await throttle.check("203.0.113.2", "new@example.com")
    clock.now += 51
    await throttle.check("203.0.113.1", "new@example.com")


async def account_delay_doubles_and_a_success_clears_it(make: MakeThrottle) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(), clock)
    for _ in range(5):
        await throttle.check(None, "ann@example.com")
        await throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as first:
        await throttle.check(None, "ann@example.com")
    assert first.value.retry_after_seconds == 1
    clock.now += 1
    await throttle.check(None, "ann@example.com")
    await throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as second:
        await throttle.check(None, "ann@example.com")
    assert second.value.retry_after_seconds == 2
    clock.now += 2
    await throttle.succeeded(None, "ann@example.com")
    await throttle.failed(None, "ann@example.com")
    await throttle.check(None, "ann@example.com")


async def the_account_delay_is_capped(make: MakeThrottle) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(account_max_delay_seconds=900), clock)
    for _ in range(40):
        await throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check(None, "ann@example.com")
    assert refused.value.retry_after_seconds == 900


async def a_pairs_failures_are_forgotten_after_a_quiet_while(make: MakeThrottle) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(account_memory_seconds=3600), clock)
    for _ in range(20):
        await throttle.failed("203.0.113.1", "ann@example.com")
    clock.now += 3599  # the 15-minute delay is over; the count is still remembered
    await throttle.check("203.0.113.1", "ann@example.com")
    await throttle.failed("203.0.113.1", "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check("203.0.113.1", "ann@example.com")
    assert refused.value.retry_after_seconds == 900
    clock.now += 3600  # an hour without a failure: the count starts again
    await throttle.failed("203.0.113.1", "ann@example.com")
    await throttle.check("203.0.113.1", "ann@example.com")


async def failures_from_one_address_do_not_hold_back_the_account_at_another(
    make: MakeThrottle,
) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(ip_failures=1000), clock)
    for _ in range(40):
        await throttle.failed("203.0.113.1", "ann@example.com")
        clock.now += 1
    # The failing client waits the full delay ...
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check("203.0.113.1", "ann@example.com")
    assert refused.value.retry_after_seconds == 900 - 1
    # ... the owner at another address, known or not, does not.
    await throttle.check("198.51.100.7", "ann@example.com")
    await throttle.check(None, "ann@example.com")
    # Other accounts from the failing address are not held back either (the per-IP
    # window, here very wide, is what limits a spray).
    await throttle.check("203.0.113.1", "bob@example.com")


async def failures_from_many_addresses_hold_back_unknown_clients_only(
    make: MakeThrottle,
) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(spread_addresses=10, spread_window_seconds=3600), clock)
    await throttle.succeeded("192.0.2.10", "ann@example.com")  # the owner's usual client
    for n in range(10):
        clock.now += 1
        await throttle.failed(f"203.0.113.{n}", "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check("198.51.100.7", "ann@example.com")
    # Until the oldest of the ten failing addresses leaves the window.
    assert refused.value.retry_after_seconds == 3600 - 9
    await throttle.check("192.0.2.10", "ann@example.com")
    await throttle.check("198.51.100.7", "bob@example.com")
    clock.now += 3600 - 9
    await throttle.check("198.51.100.7", "ann@example.com")


async def only_the_newest_failing_addresses_count_for_the_spread(make: MakeThrottle) -> None:
    clock = Clock()
    throttle = make(ThrottlePolicy(spread_addresses=3, spread_window_seconds=100), clock)
    for n in range(5):
        clock.now += 10
        await throttle.failed(f"203.0.113.{n}", "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        await throttle.check("198.51.100.7", "ann@example.com")
    # The oldest of the three newest (203.0.113.2, at +30) decides: 100 - (50 - 30).
    assert refused.value.retry_after_seconds == 80
    # A success of one of them takes it out of the count.
    await throttle.succeeded("203.0.113.4", "ann@example.com")
    await throttle.check("198.51.100.7", "ann@example.com")


async def a_known_client_is_forgotten_after_a_while_and_a_failing_one_stays_slowed(
    make: MakeThrottle,
) -> None:
    clock = Clock()
    throttle = make(
        ThrottlePolicy(spread_addresses=3, known_client_seconds=100, account_free_failures=2),
        clock,
    )
    await throttle.succeeded("192.0.2.10", "ann@example.com")
    for n in range(3):
        await throttle.failed(f"203.0.113.{n}", "ann@example.com")
    await throttle.check("192.0.2.10", "ann@example.com")
    # A known client that fails itself is slowed like any other.
    await throttle.failed("192.0.2.10", "ann@example.com")
    await throttle.failed("192.0.2.10", "ann@example.com")
    with pytest.raises(RateLimitedError):
        await throttle.check("192.0.2.10", "ann@example.com")
    await throttle.succeeded("192.0.2.10", "ann@example.com")
    await throttle.check("192.0.2.10", "ann@example.com")
    clock.now += 101
    for n in range(3):
        await throttle.failed(f"203.0.113.{n}", "ann@example.com")
    with pytest.raises(RateLimitedError):
        await throttle.check("192.0.2.10", "ann@example.com")


SCENARIOS: list[Scenario] = [
    ip_failures_are_limited_in_a_sliding_minute,
    account_delay_doubles_and_a_success_clears_it,
    the_account_delay_is_capped,
    a_pairs_failures_are_forgotten_after_a_quiet_while,
    failures_from_one_address_do_not_hold_back_the_account_at_another,
    failures_from_many_addresses_hold_back_unknown_clients_only,
    only_the_newest_failing_addresses_count_for_the_spread,
    a_known_client_is_forgotten_after_a_while_and_a_failing_one_stays_slowed,
]


def scenario_ids(scenario: Scenario) -> str:
    return scenario.__name__
