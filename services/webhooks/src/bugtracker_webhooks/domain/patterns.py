"""Which events a webhook subscribes to: patterns over event names; no I/O.

A pattern is an exact event name (`ticket.created`), a prefix ending in `.*` that names
every event under it (`ticket.*`), or `*` for everything. A pattern must name at least one
event the service knows at the time it is saved: a typo (`ticket.craeted`) would otherwise
subscribe to nothing, silently. A prefix keeps matching events added under it later; that
is what a subscriber to `ticket.*` asks for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

WILDCARD = "*"
PREFIX_SUFFIX = ".*"
MAX_PATTERNS = 50


class InvalidPatternError(ValueError):
    """A list of patterns the service refuses; the message names the bad pattern."""

    def __init__(self, message: str, pattern: str | None = None) -> None:
        super().__init__(message)
        self.pattern = pattern


def validate_patterns(patterns: Sequence[str], known: Collection[str]) -> list[str]:
    """The patterns deduplicated, in their order, once each is known to name an event.

    `known` holds the event names that may be delivered. Raises InvalidPatternError for
    an empty list, more than MAX_PATTERNS, or a pattern that names no known event."""
    # A bare string is a Sequence[str] too: "ticket.*" would be read as 8 patterns.
    if isinstance(patterns, str):
        raise InvalidPatternError("the patterns must be a list of strings, not one string")
    if not patterns:
        raise InvalidPatternError("at least one event pattern is required")
    if len(patterns) > MAX_PATTERNS:
        raise InvalidPatternError(
            f"at most {MAX_PATTERNS} event patterns are allowed, not {len(patterns)}"
        )
    kept: list[str] = []
    for pattern in patterns:
        _check(pattern, known)
        if pattern not in kept:
            kept.append(pattern)
    return kept


def _check(pattern: str, known: Collection[str]) -> None:
    if pattern == WILDCARD or pattern in known:
        return
    if pattern.endswith(PREFIX_SUFFIX):
        prefix = pattern[:-1]  # with its dot: "ticket."
        if len(prefix) > 1 and WILDCARD not in prefix:
            if any(name.startswith(prefix) for name in known):
                return
            raise InvalidPatternError(
                f"the event pattern {pattern!r} matches no known event", pattern
            )
    raise InvalidPatternError(
        f"unknown event pattern {pattern!r}: use an event name (ticket.created), "
        f"a prefix with a wildcard (ticket.*) or {WILDCARD!r}",
        pattern,
    )


def matches(patterns: Sequence[str], event_name: str) -> bool:
    """Whether any of the (validated) patterns selects the event."""
    for pattern in patterns:
        if pattern in (WILDCARD, event_name):
            return True
        if pattern.endswith(PREFIX_SUFFIX) and event_name.startswith(pattern[:-1]):
            return True
    return False
