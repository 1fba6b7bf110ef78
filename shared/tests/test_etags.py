from __future__ import annotations

import pytest
from bugtracker_shared.etags import (
    PreconditionFailedError,
    check_version,
    etag,
    expected_version,
    not_modified,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("*", None), ('"3"', 3), ('W/"3"', 3), ('"x", "4"', 4), ('"abc"', -1)],
)
def test_if_match_parsing(header: str | None, expected: int | None) -> None:
    assert expected_version(header) == expected


def test_a_stale_version_fails_the_precondition() -> None:
    check_version(3, None)
    check_version(3, 3)
    with pytest.raises(PreconditionFailedError):
        check_version(3, 2)
    with pytest.raises(PreconditionFailedError):
        check_version(3, -1)


def test_if_none_match() -> None:
    assert not_modified(etag(2), 2)
    assert not_modified('W/"2", "9"', 2)
    assert not not_modified('"1"', 2)
    assert not not_modified(None, 2)
