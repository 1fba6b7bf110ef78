from __future__ import annotations

import pytest
from bugtracker_auth.domain.errors import RateLimitedError, WeakPasswordError
from bugtracker_auth.domain.passwords import check_password
from bugtracker_auth.infrastructure.passwords import BundledCommonPasswords
from bugtracker_auth.infrastructure.throttle import InMemoryLoginThrottle, ThrottlePolicy

COMMON = BundledCommonPasswords()


def test_the_bundled_list_is_large_and_case_insensitive() -> None:
    assert len(COMMON) > 15_000
    assert "Password123" in COMMON
    assert "CORRECT HORSE BATTERY STAPLE" in COMMON
    assert "plum lantern orbit quietly 47" not in COMMON


@pytest.mark.parametrize(
    "password",
    [
        "x" * 14,
        "x" * 129,
        "Correct Horse Battery Staple",
        "ann@example.com",
        "Ann Example Person",
        "abcabcabcabcabcabc",
        "  1q2w3e4r5t6y7u8i9o0p  ",
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPasswordError):
        check_password(
            password, email="ann@example.com", display_name="Ann Example Person", common=COMMON
        )


def test_a_long_uncommon_password_is_accepted() -> None:
    check_password(
        "plum lantern orbit quietly 47", email="a@b.c", display_name="Ann", common=COMMON
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ip_failures_are_limited_in_a_sliding_minute() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(clock=clock)
    for n in range(10):
        throttle.check("203.0.113.1", f"u{n}@example.com")
        throttle.failed("203.0.113.1", f"u{n}@example.com")
        clock.now += 1
    with pytest.raises(RateLimitedError) as refused:
        throttle.check("203.0.113.1", "new@example.com")
    assert refused.value.headers == {"Retry-After": "50"}
    throttle.check("203.0.113.2", "new@example.com")
    clock.now += 51
    throttle.check("203.0.113.1", "new@example.com")


def test_account_delay_doubles_and_a_success_clears_it() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(clock=clock)
    for _ in range(5):
        throttle.check(None, "ann@example.com")
        throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as first:
        throttle.check(None, "ann@example.com")
    assert first.value.retry_after_seconds == 1
    clock.now += 1
    throttle.check(None, "ann@example.com")
    throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as second:
        throttle.check(None, "ann@example.com")
    assert second.value.retry_after_seconds == 2
    clock.now += 2
    throttle.succeeded(None, "ann@example.com")
    throttle.failed(None, "ann@example.com")
    throttle.check(None, "ann@example.com")


def test_the_account_delay_is_capped() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(ThrottlePolicy(account_max_delay_seconds=900), clock=clock)
    for _ in range(40):
        throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        throttle.check(None, "ann@example.com")
    assert refused.value.retry_after_seconds == 900


def test_failures_from_one_address_do_not_hold_back_the_account_at_another() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(ThrottlePolicy(ip_failures=1000), clock=clock)
    for _ in range(40):
        throttle.failed("203.0.113.1", "ann@example.com")
        clock.now += 1
    # The failing client waits the full delay ...
    with pytest.raises(RateLimitedError) as refused:
        throttle.check("203.0.113.1", "ann@example.com")
    assert refused.value.retry_after_seconds == 900 - 1
    # ... the owner at another address, known or not, does not.
    throttle.check("198.51.100.7", "ann@example.com")
    throttle.check(None, "ann@example.com")
    # Other accounts from the failing address are not held back either (the per-IP
    # window, here very wide, is what limits a spray).
    throttle.check("203.0.113.1", "bob@example.com")


def test_failures_from_many_addresses_hold_back_unknown_clients_only() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(
        ThrottlePolicy(spread_addresses=10, spread_window_seconds=3600), clock=clock
    )
    throttle.succeeded("192.0.2.10", "ann@example.com")  # the owner's usual client
    for n in range(10):
        clock.now += 1
        throttle.failed(f"203.0.113.{n}", "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        throttle.check("198.51.100.7", "ann@example.com")
    # Until the oldest of the ten failing addresses leaves the window.
    assert refused.value.retry_after_seconds == 3600 - 9
    throttle.check("192.0.2.10", "ann@example.com")
    throttle.check("198.51.100.7", "bob@example.com")
    clock.now += 3600 - 9
    throttle.check("198.51.100.7", "ann@example.com")


def test_a_known_client_is_forgotten_after_a_while_and_a_failing_one_stays_slowed() -> None:
    clock = Clock()
    throttle = InMemoryLoginThrottle(
        ThrottlePolicy(spread_addresses=3, known_client_seconds=100, account_free_failures=2),
        clock=clock,
    )
    throttle.succeeded("192.0.2.10", "ann@example.com")
    for n in range(3):
        throttle.failed(f"203.0.113.{n}", "ann@example.com")
    throttle.check("192.0.2.10", "ann@example.com")
    # A known client that fails itself is slowed like any other.
    throttle.failed("192.0.2.10", "ann@example.com")
    throttle.failed("192.0.2.10", "ann@example.com")
    with pytest.raises(RateLimitedError):
        throttle.check("192.0.2.10", "ann@example.com")
    throttle.succeeded("192.0.2.10", "ann@example.com")
    throttle.check("192.0.2.10", "ann@example.com")
    clock.now += 101
    for n in range(3):
        throttle.failed(f"203.0.113.{n}", "ann@example.com")
    with pytest.raises(RateLimitedError):
        throttle.check("192.0.2.10", "ann@example.com")
