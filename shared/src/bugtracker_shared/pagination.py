"""Opaque, stable keyset cursors and the RFC 8288 `Link` header that carries them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


class InvalidCursorError(ValueError):
    code = "invalid_cursor"


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("The cursor is not valid.") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidCursorError("The cursor is not valid.")
    return values


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def next_link(
    url_path: str, query: Iterable[tuple[str, str]], next_cursor: str | None
) -> str | None:
    """`Link: <...>; rel="next"` for the page after this one, keeping the other filters."""
    if next_cursor is None:
        return None
    params = [(k, v) for k, v in query if k != "cursor"]
    params.append(("cursor", next_cursor))
    return f'<{url_path}?{urlencode(params)}>; rel="next"'


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of domain objects and the cursor of the next page, if any."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def from_overfetch(cls, rows: list[T], limit: int, key: Callable[[T], list[Any]]) -> Listing[T]:
        """`rows` was fetched with `limit + 1`: the extra row tells whether a next page exists."""
        if len(rows) > limit:
            return cls(rows[:limit], encode_cursor(key(rows[limit - 1])))
        return cls(rows, None)


def decode_time_id_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """A keyset cursor over (timestamp, id), the usual order of Bugtracker lists."""
    moment, ident = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(str(moment)), uuid.UUID(str(ident))
    except ValueError as exc:
        raise InvalidCursorError("The cursor is not valid.") from exc


def time_id_key(moment: datetime, ident: uuid.UUID) -> list[Any]:
    return [moment.isoformat(), str(ident)]


def decode_int_cursor(cursor: str) -> int:
    """A keyset cursor over one integer (e.g. an identity column)."""
    (value,) = decode_cursor(cursor, 1)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidCursorError("The cursor is not valid.")
    return value
