from __future__ import annotations

import pytest
from bugtracker_auth.domain.errors import RateLimitedError, WeakPasswordError
from bugtracker_auth.domain.passwords import check_password
from bugtracker_auth.infrastructure.passwords import BundledCommonPasswords
from bugtracker_auth.infrastructure.throttle import InMemoryLoginThrottle

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
    throttle = InMemoryLoginThrottle(clock=clock, account_max_delay_seconds=900)
    for _ in range(40):
        throttle.failed(None, "ann@example.com")
    with pytest.raises(RateLimitedError) as refused:
        throttle.check(None, "ann@example.com")
    assert refused.value.retry_after_seconds == 900
