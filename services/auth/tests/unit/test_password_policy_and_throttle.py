from __future__ import annotations

import pytest
from bugtracker_auth.domain.errors import WeakPasswordError
from bugtracker_auth.domain.passwords import check_password
from bugtracker_auth.infrastructure.passwords import BundledCommonPasswords
from bugtracker_auth.infrastructure.throttle import InMemoryLoginThrottle

from services.auth.tests.throttle_scenarios import SCENARIOS, Scenario, scenario_ids

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


@pytest.mark.parametrize("scenario", SCENARIOS, ids=scenario_ids)
async def test_the_in_memory_throttle_follows_the_policy(scenario: Scenario) -> None:
    await scenario(lambda policy, clock: InMemoryLoginThrottle(policy, clock=clock))
