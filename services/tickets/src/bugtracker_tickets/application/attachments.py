"""Attachments (docs/adr/0041): upload, list, read, download and delete files on tickets.

Members of the ticket's project read them; reporters and above upload; the uploader or a
maintainer deletes. The bytes are written to the blob store first, as they arrive, under
their sha256; then the row commits with its `ticket.attachment_added` event. A crash in
between leaves bytes that no row names, which the sweep removes after a grace period;
no client ever sees a half attachment. Deleting removes the row (and its event); the
bytes go with the sweep once no row names them (the same file may be attached twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bugtracker_shared.pagination import Listing, decode_cursor, encode_cursor
from bugtracker_shared.permissions import Permission
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import BlobStore, BlobTooLargeError, UnitOfWork
from bugtracker_tickets.application.ticket_events import record
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.domain.attachments import Attachment, safe_filename
from bugtracker_tickets.domain.errors import (
    AttachmentNotFoundError,
    AttachmentTooLargeError,
    ForbiddenError,
    QuotaExceededError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.tickets import ProjectAccess, Ticket

logger = logging.getLogger("bugtracker.tickets.attachments")

# How long bytes no row names are kept (an upload between its bytes and its row), and how
# often the sweep runs.
SWEEP_GRACE = timedelta(hours=1)
SWEEP_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True)
class Download:
    attachment: Attachment
    # A presigned URL of the store to redirect to, or None: the service streams the bytes.
    redirect: str | None


def attachment_data(attachment: Attachment) -> dict[str, object]:
    """The attachment as its events carry it."""
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "uploader_id": attachment.uploader_id,
    }


@dataclass
class AttachmentUseCases:
    uow: Callable[[], UnitOfWork]
    tickets: TicketUseCases
    store: BlobStore
    sniff: Callable[[bytes], str]
    max_bytes: int
    # Bytes each project's attachments may take together; None: unlimited.
    quota_bytes: int | None = None
    sweep_grace: timedelta = SWEEP_GRACE
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def _visible(
        self, principal: Principal, attachment_id: uuid.UUID
    ) -> tuple[Attachment, Ticket, ProjectAccess]:
        async with self.uow() as uow:
            attachment = await uow.attachments.get(attachment_id)
        if attachment is None:
            raise AttachmentNotFoundError()
        try:
            ticket, access = await self.tickets.visible_ticket(principal, str(attachment.ticket_id))
        except TicketNotFoundError as exc:  # a deleted ticket hides its attachments
            raise AttachmentNotFoundError() from exc
        return attachment, ticket, access

    async def upload(
        self, principal: Principal, ticket_ref: str, filename: str, chunks: AsyncIterator[bytes]
    ) -> Attachment:
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_CREATE)
        access.require_writable()
        try:
            blob = await self.store.put(chunks, max_bytes=self.max_bytes)
        except BlobTooLargeError as exc:
            raise AttachmentTooLargeError(self.max_bytes) from exc
        attachment = Attachment(
            id=uuid.uuid4(),
            ticket_id=ticket.id,
            project_id=ticket.project_id,
            filename=safe_filename(filename),
            content_type=self.sniff(blob.head),
            size=blob.size,
            sha256=blob.sha256,
            uploader_id=principal.user_id,
            created_at=datetime.now(UTC),
        )
        async with self.uow() as uow:
            live = await uow.tickets.get(ticket.id, for_update=True)
            if live is None or live.deleted_at is not None:
                raise TicketNotFoundError("No such ticket.")
            if self.quota_bytes is not None:
                used = await uow.attachments.bytes_in_project(ticket.project_id)
                if used + blob.size > self.quota_bytes:
                    raise QuotaExceededError(self.quota_bytes, used)
            await uow.attachments.add(attachment)
            await record(
                uow,
                "ticket.attachment_added",
                live,
                principal,
                attachment=attachment_data(attachment),
            )
            await uow.commit()
        return attachment

    async def list_attachments(
        self, principal: Principal, ticket_ref: str, *, limit: int, cursor: str | None
    ) -> Listing[Attachment]:
        """Oldest first."""
        ticket, _ = await self.tickets.visible_ticket(principal, ticket_ref)
        after = None
        if cursor:
            at, last = decode_cursor(cursor, 2)
            after = (datetime.fromisoformat(str(at)), uuid.UUID(str(last)))
        async with self.uow() as uow:
            found = await uow.attachments.of_ticket(ticket.id, after=after, limit=limit + 1)
        next_cursor = None
        if len(found) > limit:
            last_one = found[limit - 1]
            next_cursor = encode_cursor([last_one.created_at.isoformat(), str(last_one.id)])
        return Listing(found[:limit], next_cursor)

    async def get_attachment(self, principal: Principal, attachment_id: uuid.UUID) -> Attachment:
        attachment, _, _ = await self._visible(principal, attachment_id)
        return attachment

    async def download(self, principal: Principal, attachment_id: uuid.UUID) -> Download:
        attachment, _, _ = await self._visible(principal, attachment_id)
        url = await self.store.presigned_url(
            attachment.sha256,
            filename=attachment.filename,
            content_type=attachment.content_type,
            disposition=attachment.disposition,
        )
        return Download(attachment, url)

    async def delete_attachment(self, principal: Principal, attachment_id: uuid.UUID) -> None:
        attachment, ticket, access = await self._visible(principal, attachment_id)
        if attachment.uploader_id != principal.user_id and (
            Permission.TICKET_DELETE not in access.permissions
        ):
            raise ForbiddenError("Only the uploader or a maintainer deletes an attachment.")
        access.require_writable()
        async with self.uow() as uow:
            # Under the ticket's lock: a concurrent delete of the attachment or of the
            # ticket is seen, and only one `ticket.attachment_removed` is written.
            live = await uow.tickets.get(ticket.id, for_update=True)
            if live is None or live.deleted_at is not None:
                raise AttachmentNotFoundError()
            if not await uow.attachments.delete(attachment.id):
                raise AttachmentNotFoundError()
            await record(
                uow,
                "ticket.attachment_removed",
                live,
                principal,
                attachment=attachment_data(attachment),
            )
            await uow.commit()
        self.wake.set()

    # -- the sweep ---------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Remove bytes stored before `now - sweep_grace` that no attachment names (an
        upload that never got its row, a deleted attachment); how many."""
        cutoff = (now or datetime.now(UTC)) - self.sweep_grace
        stored = await self.store.older_than(cutoff)
        if not stored:
            return 0
        async with self.uow() as uow:
            orphans = await uow.attachments.unreferenced(stored)
        for sha256 in orphans:
            await self.store.delete(sha256, stored_before=cutoff)
        if orphans:
            logger.info("swept %d unreferenced attachment blobs", len(orphans))
        return len(orphans)

    async def keep_sweeping(self, *, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        """The background job: sweep, then wait for a deletion or `interval` seconds."""
        while True:
            self.wake.clear()
            try:
                await self.sweep()
            except Exception:
                logger.exception("sweeping attachment blobs failed; retry in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)
