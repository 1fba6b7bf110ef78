"""The request id of the work in progress, readable from any layer (logs, events)."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# A UUID's version (4) and variant (RFC 9562) bits, set on 128 random bits.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random UUID (version 4) as text.

    From the process's pseudo-random generator, not `os.urandom`: a request id
    correlates log lines and is no secret, and this takes a third of `uuid4()`'s time
    with no system call (one per request, measured in bench/request_path.py).
    """
    h = f"{random.getrandbits(128) & _CLEAR | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def sane_request_id(candidate: str | None) -> str:
    """Keep a client's request id when it is harmless, otherwise make a new one."""
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()
