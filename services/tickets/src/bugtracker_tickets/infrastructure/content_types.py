"""A file's content type from its first bytes (docs/adr/0041), never from the client, and
what both blob stores note of an upload's bytes as they arrive (`Received`)."""

from __future__ import annotations

import contextlib
import hashlib

import puremagic

from bugtracker_tickets.application.ports import BlobTooLargeError, StoredBlob

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


class Received:
    """An upload's bytes as both blob stores take them in: counted against the limit
    (BlobTooLargeError past it), hashed, and the head kept for sniffing."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise BlobTooLargeError
        self._digest.update(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def blob(self) -> StoredBlob:
        return StoredBlob(sha256=self.sha256, size=self.size, head=self.head)
