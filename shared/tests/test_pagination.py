"""Keyset cursors are opaque round trips, and a bad cursor is a client error, not a 500."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from bugtracker_shared.pagination import (
    InvalidCursorError,
    Listing,
    decode_cursor,
    decode_int_cursor,
    decode_time_id_cursor,
    encode_cursor,
    next_link,
    time_id_key,
)


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    values = ["2026-01-02T03:04:05+00:00", "a/b+c?d", 7]
    cursor = encode_cursor(values)
    assert "=" not in cursor
    assert "/" not in cursor
    assert "+" not in cursor
    assert decode_cursor(cursor, 3) == values


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",  # not base64
        base64.urlsafe_b64encode(b"not json").decode(),
        encode_cursor({"a": 1}),  # type: ignore[arg-type]  # not a list
        encode_cursor([1, 2, 3]),  # wrong arity
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
    ],
)
def test_a_malformed_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursorError) as caught:
        decode_cursor(cursor, 2)
    assert caught.value.code == "invalid_cursor"


def test_time_id_cursor_round_trips() -> None:
    moment = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    ident = uuid.uuid4()
    assert decode_time_id_cursor(encode_cursor(time_id_key(moment, ident))) == (moment, ident)


@pytest.mark.parametrize(
    "values", [["yesterday", str(uuid.uuid4())], ["2026-05-01T12:30:00+00:00", "not-a-uuid"]]
)
def test_time_id_cursor_rejects_bad_values(values: list[str]) -> None:
    with pytest.raises(InvalidCursorError):
        decode_time_id_cursor(encode_cursor(values))


def test_int_cursor_accepts_integers_only() -> None:
    assert decode_int_cursor(encode_cursor([42])) == 42
    for bad in (["42"], [True], [1.5]):
        with pytest.raises(InvalidCursorError):
            decode_int_cursor(encode_cursor(bad))


def test_next_link_keeps_the_filters_and_replaces_the_cursor() -> None:
    query = [("status", "open"), ("status", "in_progress"), ("cursor", "old"), ("limit", "5")]
    link = next_link("/api/v1/tickets", query, "NEXT")
    assert link == (
        '</api/v1/tickets?status=open&status=in_progress&limit=5&cursor=NEXT>; rel="next"'
    )
    assert next_link("/api/v1/tickets", query, None) is None


def test_overfetch_tells_whether_a_next_page_exists() -> None:
    rows = [1, 2, 3]
    full = Listing.from_overfetch(rows, 2, key=lambda row: [row])
    assert full.items == [1, 2]
    assert full.next_cursor is not None
    assert decode_int_cursor(full.next_cursor) == 2
    last = Listing.from_overfetch(rows, 3, key=lambda row: [row])
    assert last.items == rows
    assert last.next_cursor is None
