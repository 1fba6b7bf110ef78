"""A file's content type from its first bytes (docs/adr/0041), never from the client."""

from __future__ import annotations

import contextlib

import puremagic

OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain"
# How much of the start of a file the sniffing reads.
HEAD_BYTES = 8192


def sniff(head: bytes) -> str:
    """The media type puremagic (a kept signature table) finds in `head`; text that
    decodes as UTF-8 without control characters is text/plain; else octet-stream."""
    if head:
        with contextlib.suppress(puremagic.PureError, ValueError):
            found = puremagic.from_string(head, mime=True)
            if found:
                return str(found)
    if _is_text(head):
        return TEXT
    return OCTET_STREAM


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode()
    except UnicodeDecodeError:
        # The head may end inside a character: judge what decodes.
        try:
            text = head[:-3].decode()
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)
