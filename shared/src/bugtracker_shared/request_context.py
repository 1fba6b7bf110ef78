"""The request id of the work in progress, readable from any layer (logs, events)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def sane_request_id(candidate: str | None) -> str:
    """Keep a client's request id when it is harmless, otherwise make a new one."""
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    return request_id_var.get()
