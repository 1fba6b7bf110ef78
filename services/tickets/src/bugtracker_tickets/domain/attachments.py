"""Attachments (docs/adr/0041): files on tickets, stored once per content (sha256).

What needs no I/O: the attachment's record, a safe filename, and how a download is
presented (inline only for raster images a browser cannot run anything from).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

# Raster images shown inline; everything else downloads (`Content-Disposition:
# attachment`), and every answer is sandboxed and not sniffed by the browser.
INLINE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_FILENAME_BYTES: Final = 255
DEFAULT_FILENAME: Final = "file"
# `![](attachment:<id>)` in a description or a comment (docs/adr/0041).
REFERENCE: Final = re.compile(
    r"attachment:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


@dataclass(frozen=True)
class Attachment:
    id: uuid.UUID
    ticket_id: uuid.UUID
    project_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    uploader_id: uuid.UUID
    created_at: datetime

    @property
    def disposition(self) -> Literal["inline", "attachment"]:
        return "inline" if self.content_type in INLINE_TYPES else "attachment"


def safe_filename(name: str) -> str:
    """The last path segment of `name`, NFC-normalized, without control or format
    characters, trimmed, at most MAX_FILENAME_BYTES in UTF-8; DEFAULT_FILENAME when
    nothing is left (or only dots)."""
    last = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(
        c for c in unicodedata.normalize("NFC", last) if unicodedata.category(c)[0] != "C"
    ).strip()
    encoded = cleaned.encode()[:MAX_FILENAME_BYTES]
    cleaned = encoded.decode(errors="ignore").strip()
    if not cleaned.strip("."):
        return DEFAULT_FILENAME
    return cleaned


def download_path(attachment_id: uuid.UUID) -> str:
    """Where a member downloads an attachment, through the gateway."""
    return f"/api/v1/attachments/{attachment_id}/content"
