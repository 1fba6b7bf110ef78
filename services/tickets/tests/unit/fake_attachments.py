"""In-memory fakes of the attachment ports (tests only, docs/adr/0041).

`FakeAttachmentRepository` keeps the rows in the unit of work's private copy of the state
(`TicketsState.attachments`), as every fake's data does, and behaves as
`SqlAttachmentRepository` (oldest first by (created_at, id); the quota counts every row
of the project).

`FakeBlobStore` plays `LocalBlobStore`: bytes by sha256 with when they were (last)
stored, outside any transaction (a file system does not roll back). Its clock is the
attribute `now`, moved by `advance`; `put` reads the chunks one by one and stores
nothing when they go past `max_bytes`; storing the same bytes again stores them once and
refreshes their time, as `os.replace` gives the file a new mtime.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bugtracker_tickets.application.ports import BlobTooLargeError, StoredBlob
from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.infrastructure.content_types import HEAD_BYTES

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork, TicketsState


class FakeAttachmentRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> TicketsState:
        return self._uow.state

    async def add(self, attachment: Attachment) -> None:
        if attachment.id in self._state.attachments:
            raise ValueError(f"duplicate attachment id {attachment.id}")
        self._state.attachments[attachment.id] = copy.deepcopy(attachment)

    async def get(self, attachment_id: uuid.UUID) -> Attachment | None:
        attachment = self._state.attachments.get(attachment_id)
        return copy.deepcopy(attachment) if attachment else None

    async def delete(self, attachment_id: uuid.UUID) -> bool:
        return self._state.attachments.pop(attachment_id, None) is not None

    async def of_ticket(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Attachment]:
        rows = sorted(
            (a for a in self._state.attachments.values() if a.ticket_id == ticket_id),
            key=lambda a: (a.created_at, a.id),
        )
        if after is not None:
            rows = [a for a in rows if (a.created_at, a.id) > after]
        return copy.deepcopy(rows[:limit])

    async def bytes_in_project(self, project_id: uuid.UUID) -> int:
        # No lock to take: one transaction at a time here.
        return sum(a.size for a in self._state.attachments.values() if a.project_id == project_id)

    async def unreferenced(self, sha256s: Sequence[str]) -> list[str]:
        named = {a.sha256 for a in self._state.attachments.values()}
        return [sha for sha in sha256s if sha not in named]


class FakeBlobStore:
    """Blobs in a dict: sha256 -> (bytes, stored_at)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 1, 1, tzinfo=UTC)
        self.blobs: dict[str, tuple[bytes, datetime]] = {}
        # How many chunks each `put` took from its iterator (the last call's last).
        self.chunks_read: list[int] = []

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    async def put(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        digest, size, read = hashlib.sha256(), 0, 0
        parts: list[bytes] = []
        self.chunks_read.append(0)
        async for chunk in chunks:
            read += 1
            self.chunks_read[-1] = read
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLargeError
            digest.update(chunk)
            parts.append(chunk)
        content = b"".join(parts)
        sha256 = digest.hexdigest()
        self.blobs[sha256] = (content, self.now)
        return StoredBlob(sha256=sha256, size=size, head=content[:HEAD_BYTES])

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        content, _ = self.blobs[sha256]
        yield content[start : None if end is None else end + 1]

    async def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, disposition: str
    ) -> str | None:
        return None  # the service streams, as with LocalBlobStore

    async def delete(self, sha256: str, *, stored_before: datetime) -> None:
        found = self.blobs.get(sha256)
        if found is not None and found[1] < stored_before:
            del self.blobs[sha256]

    async def older_than(self, cutoff: datetime) -> list[str]:
        return [sha for sha, (_, stored_at) in self.blobs.items() if stored_at < cutoff]
