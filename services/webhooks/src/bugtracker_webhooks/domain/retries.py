"""When a failed delivery is tried again; pure arithmetic, no clock, no randomness.

The first attempt goes out at once; the schedule (settings.retry_schedule) gives the
delay before each retry, so a schedule of n entries allows n + 1 attempts in all. Each
delay is scaled by a jitter factor the caller draws from JITTER_RANGE, so that the
deliveries failed by one outage do not all come back in the same second. An endpoint
that asks for more time with `Retry-After` gets it, but never more than the schedule's
longest delay: a hostile or broken header cannot park a delivery for a year.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_SCHEDULE_ENTRIES = 20
# The caller draws the jitter factor uniformly from this range.
JITTER_RANGE = (0.8, 1.2)


def parse_schedule(text: str) -> tuple[float, ...]:
    """The retry delays in seconds from their comma-separated setting ("5,300,1800").

    Raises ValueError unless there are 1..MAX_SCHEDULE_ENTRIES finite, positive numbers."""
    parts = [part.strip() for part in text.split(",")]
    if parts == [""]:
        raise ValueError("the retry schedule is empty: give comma-separated seconds")
    if len(parts) > MAX_SCHEDULE_ENTRIES:
        raise ValueError(
            f"the retry schedule has {len(parts)} entries; at most "
            f"{MAX_SCHEDULE_ENTRIES} are allowed"
        )
    delays: list[float] = []
    for part in parts:
        try:
            delay = float(part)
        except ValueError:
            raise ValueError(f"the retry schedule entry {part!r} is not a number") from None
        if not math.isfinite(delay) or delay <= 0:
            raise ValueError(f"the retry schedule entry {part!r} is not a positive number")
        delays.append(delay)
    return tuple(delays)


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    *,
    retry_after: float | None,
    jitter: float,
) -> float | None:
    """Seconds to wait before the next attempt, after `attempts_made` attempts failed;
    None when none is left (attempts_made > len(schedule)).

    `retry_after` is what the endpoint asked for (parse_retry_after), if anything: it
    wins over a shorter delay, up to max(schedule)."""
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be at least 1, not {attempts_made}")
    low, high = JITTER_RANGE
    if not low <= jitter <= high:
        raise ValueError(f"jitter must be within [{low}, {high}], not {jitter}")
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * jitter
    if retry_after is not None and retry_after > delay:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from `now` that a `Retry-After` header asks for: delta-seconds or an
    HTTP-date (RFC 9110 10.2.3). None when absent or unreadable; 0 for a date passed."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        try:
            seconds = float(value)
        except (ValueError, OverflowError):
            return None
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC with no zone said
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
