"""Conditional requests: `ETag` from an aggregate's version, `If-Match` and `If-None-Match`."""

from __future__ import annotations


class PreconditionFailedError(Exception):
    """The client's `If-Match` names a version that is no longer current (412)."""

    code = "precondition_failed"


def etag(version: int) -> str:
    return f'"{version}"'


def _tags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` header insists on; None when there is no condition.

    `*` matches any existing version. A header that names no version of ours can never
    match, so it is reported as version -1 (always a 412).
    """
    if if_match is None or if_match.strip() == "*":
        return None
    for tag in _tags(if_match):
        value = tag.strip('"')
        if value.isdigit():
            return int(value)
    return -1


def check_version(current: int, expected: int | None) -> None:
    if expected is not None and current != expected:
        raise PreconditionFailedError(
            f"The resource has changed (now version {current}); fetch it again and retry."
        )


def not_modified(if_none_match: str | None, version: int) -> bool:
    """True when the client's cached copy (`If-None-Match`) is still current (304)."""
    if if_none_match is None:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or etag(version) in tags
