"""Attachment rows (docs/adr/0041); their bytes are in the blob store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from bugtracker_shared.rows import Columns
from sqlalchemy import delete, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.infrastructure.tables import attachments

ATTACHMENTS = Columns(Attachment, attachments)
_attachment = ATTACHMENTS.from_row
# The first key of the transaction-scoped advisory lock that serializes one project's
# uploads against its quota (the second is the project id's hash).
QUOTA_LOCK = 0x7E3


class SqlAttachmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, attachment: Attachment) -> None:
        await self._session.execute(insert(attachments).values(ATTACHMENTS.values(attachment)))

    async def get(self, attachment_id: uuid.UUID) -> Attachment | None:
        query = select(*ATTACHMENTS.columns).where(attachments.c.id == attachment_id)
        row = (await self._session.execute(query)).mappings().first()
        return _attachment(row) if row else None

    async def delete(self, attachment_id: uuid.UUID) -> bool:
        deleted = await self._session.execute(
            delete(attachments).where(attachments.c.id == attachment_id).returning(attachments.c.id)
        )
        return deleted.first() is not None

    async def of_ticket(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Attachment]:
        query = select(*ATTACHMENTS.columns).where(attachments.c.ticket_id == ticket_id)
        if after is not None:
            query = query.where(tuple_(attachments.c.created_at, attachments.c.id) > after)
        query = query.order_by(attachments.c.created_at, attachments.c.id).limit(limit)
        rows = (await self._session.execute(query)).mappings().all()
        return [_attachment(row) for row in rows]

    async def bytes_in_project(self, project_id: uuid.UUID) -> int:
        await self._session.execute(
            select(func.pg_advisory_xact_lock(QUOTA_LOCK, func.hashtext(str(project_id))))
        )
        total = await self._session.scalar(
            select(func.coalesce(func.sum(attachments.c.size), 0)).where(
                attachments.c.project_id == project_id
            )
        )
        return int(total or 0)

    async def unreferenced(self, sha256s: Sequence[str]) -> list[str]:
        if not sha256s:
            return []
        named = select(attachments.c.sha256).where(attachments.c.sha256.in_(sha256s)).distinct()
        known = set((await self._session.execute(named)).scalars())
        return [sha for sha in sha256s if sha not in known]
