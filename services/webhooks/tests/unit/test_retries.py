"""The retry schedule: how long a failed delivery waits, and when it gives up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_webhooks.domain.retries import (
    MAX_SCHEDULE_ENTRIES,
    next_delay,
    parse_retry_after,
    parse_schedule,
)
from bugtracker_webhooks.settings import DEFAULT_RETRY_SCHEDULE

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
SCHEDULE = (5.0, 300.0, 1800.0)


def test_the_default_schedule_parses() -> None:
    assert parse_schedule(DEFAULT_RETRY_SCHEDULE) == (
        5.0,
        300.0,
        1800.0,
        7200.0,
        18000.0,
        36000.0,
        36000.0,
        36000.0,
    )


def test_spaces_and_fractions_are_accepted() -> None:
    assert parse_schedule(" 0.5, 2 ,10") == (0.5, 2.0, 10.0)


@pytest.mark.parametrize(
    "text",
    ["", " ", "5,,10", "5,x", "0", "5,-1", "nan", "inf", "5;10", ",".join(["1"] * 21)],
)
def test_a_bad_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="retry schedule"):
        parse_schedule(text)


def test_twenty_entries_are_the_most() -> None:
    assert len(parse_schedule(",".join(["1"] * MAX_SCHEDULE_ENTRIES))) == MAX_SCHEDULE_ENTRIES


def test_each_retry_waits_its_entry_scaled_by_the_jitter() -> None:
    assert next_delay(SCHEDULE, 1, retry_after=None, jitter=1.0) == 5.0
    assert next_delay(SCHEDULE, 2, retry_after=None, jitter=0.8) == pytest.approx(240.0)
    assert next_delay(SCHEDULE, 3, retry_after=None, jitter=1.2) == pytest.approx(2160.0)


def test_no_retry_is_left_after_one_attempt_per_entry_plus_the_first() -> None:
    assert next_delay(SCHEDULE, len(SCHEDULE), retry_after=None, jitter=1.0) is not None
    assert next_delay(SCHEDULE, len(SCHEDULE) + 1, retry_after=None, jitter=1.0) is None


def test_a_longer_retry_after_is_honoured() -> None:
    assert next_delay(SCHEDULE, 1, retry_after=60.0, jitter=1.0) == 60.0


def test_a_shorter_retry_after_does_not_hurry_the_schedule() -> None:
    assert next_delay(SCHEDULE, 2, retry_after=10.0, jitter=1.0) == 300.0


def test_retry_after_is_capped_at_the_longest_delay() -> None:
    assert next_delay(SCHEDULE, 1, retry_after=10**9, jitter=1.0) == 1800.0


def test_the_cap_never_shortens_the_scheduled_delay() -> None:
    # The last entry with jitter 1.2 is longer than max(schedule) itself.
    assert next_delay(SCHEDULE, 3, retry_after=10**9, jitter=1.2) == pytest.approx(2160.0)


@pytest.mark.parametrize("jitter", [0.79, 1.21, 0.0, -1.0])
def test_a_jitter_outside_its_range_is_a_bug(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_delay(SCHEDULE, 1, retry_after=None, jitter=jitter)


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        next_delay(SCHEDULE, 0, retry_after=None, jitter=1.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Tue, 01 Jan 2030 12:01:30 GMT", 90.0),
        ("Tuesday, 01-Jan-30 12:01:30 GMT", 90.0),  # RFC 850, obsolete but allowed
        ("Tue Jan  1 12:01:30 2030", 90.0),  # asctime: no zone, taken as UTC
        ("Mon, 31 Dec 2029 12:00:00 GMT", 0.0),  # passed: never negative
    ],
)
def test_retry_after_is_read(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


# "\uff11\uff12": fullwidth digits, isdigit() but not delta-seconds.
@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "1.5", "12abc", "\uff11\uff12", "Tue, 99 Foo 2030", "9" * 400]
)
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_a_date_retry_after_depends_on_now() -> None:
    value = "Tue, 01 Jan 2030 13:00:00 GMT"

    assert parse_retry_after(value, NOW + timedelta(minutes=30)) == pytest.approx(1800.0)
