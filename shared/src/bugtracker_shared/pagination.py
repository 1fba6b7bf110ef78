"""Opaque, stable keyset cursors and the RFC 8288 `Link` header that carries them."""

from __future__ import annotations

import base64
import json
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
    next_cursor: str | None = None


def next_link(url_path: str, query: dict[str, Any], next_cursor: str | None) -> str | None:
    """`Link: <...>; rel="next"` for the page after this one, keeping the other filters."""
    if next_cursor is None:
        return None
    params = [(k, v) for k, v in query.items() if k != "cursor"]
    params.append(("cursor", next_cursor))
    return f'<{url_path}?{urlencode(params, doseq=True)}>; rel="next"'
