"""Event subscription patterns: what a webhook may subscribe to, and what it then gets."""

from __future__ import annotations

import pytest
from bugtracker_webhooks.domain.patterns import (
    MAX_PATTERNS,
    InvalidPatternError,
    matches,
    validate_patterns,
)

KNOWN = frozenset(
    {
        "ticket.created",
        "ticket.status_changed",
        "project.member_added",
        "project.created",
        "milestone.created",
    }
)


def test_exact_names_prefixes_and_everything_are_accepted() -> None:
    patterns = ["ticket.created", "project.*", "*"]

    assert validate_patterns(patterns, KNOWN) == patterns


def test_duplicates_are_dropped_and_the_order_is_kept() -> None:
    patterns = ["project.*", "ticket.created", "project.*", "ticket.created", "*"]

    assert validate_patterns(patterns, KNOWN) == ["project.*", "ticket.created", "*"]


@pytest.mark.parametrize(
    "bad",
    [
        "ticket.craeted",  # a typo of a known name
        "ticket",  # a prefix without its wildcard
        "ticket.",
        "tick*",  # a wildcard that is not a whole segment
        "ticket*",
        "*.created",
        "ticket.*.created",
        "ticket.created.*",  # no known name lies under it
        "comment.*",  # no known name starts with "comment."
        "icket.*",  # a name's middle is not a prefix
        ".*",
        "**",
        "",
        " ticket.created",
        "TICKET.CREATED",
    ],
)
def test_a_pattern_naming_no_known_event_is_refused_by_name(bad: str) -> None:
    with pytest.raises(InvalidPatternError) as caught:
        validate_patterns(["ticket.created", bad], KNOWN)

    assert repr(bad) in str(caught.value)
    assert caught.value.pattern == bad


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(InvalidPatternError, match="at least one"):
        validate_patterns([], KNOWN)


def test_at_most_fifty_patterns() -> None:
    assert len(validate_patterns(["*"] * MAX_PATTERNS, KNOWN)) == 1
    with pytest.raises(InvalidPatternError, match=f"at most {MAX_PATTERNS}"):
        validate_patterns(["*"] * (MAX_PATTERNS + 1), KNOWN)


def test_a_bare_string_is_not_taken_for_a_list_of_characters() -> None:
    with pytest.raises(InvalidPatternError, match="not one string"):
        validate_patterns("ticket.*", KNOWN)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(InvalidPatternError, ValueError)


@pytest.mark.parametrize(
    ("patterns", "event", "expected"),
    [
        (["ticket.created"], "ticket.created", True),
        (["ticket.created"], "ticket.status_changed", False),
        (["ticket.*"], "ticket.status_changed", True),
        (["ticket.*"], "ticket.some_future_event", True),
        (["ticket.*"], "ticketing.created", False),
        (["ticket.*"], "ticket", False),
        (["project.*"], "ticket.created", False),
        (["*"], "milestone.created", True),
        (["project.created", "ticket.*"], "ticket.created", True),
        ([], "ticket.created", False),
    ],
)
def test_matches(patterns: list[str], event: str, expected: bool) -> None:
    assert matches(patterns, event) is expected
