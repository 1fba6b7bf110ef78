"""Saved filters in PostgreSQL (docs/adr/0045)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from bugtracker_shared.rows import Columns
from sqlalchemy import and_, delete, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.domain.saved_filters import SavedFilter
from bugtracker_tickets.infrastructure.tables import saved_filters

FILTERS = Columns(SavedFilter, saved_filters)
_CHANGES = FILTERS.without("id", "owner_id", "created_at")


class SqlSavedFilterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, saved: SavedFilter) -> None:
        await self._session.execute(insert(saved_filters).values(FILTERS.values(saved)))

    async def get(self, filter_id: uuid.UUID, *, for_update: bool = False) -> SavedFilter | None:
        query = select(saved_filters).where(saved_filters.c.id == filter_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return FILTERS.from_row(row) if row else None

    async def update(self, saved: SavedFilter) -> None:
        await self._session.execute(
            update(saved_filters)
            .where(saved_filters.c.id == saved.id)
            .values(_CHANGES.values(saved))
        )

    async def delete(self, filter_id: uuid.UUID) -> None:
        await self._session.execute(delete(saved_filters).where(saved_filters.c.id == filter_id))

    async def visible(
        self,
        user_id: uuid.UUID,
        projects: Sequence[uuid.UUID],
        *,
        project_id: uuid.UUID | None,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> list[SavedFilter]:
        f = saved_filters.c
        # Two indexed halves (the owner's, the projects' shared ones) of one ordered list.
        where = [or_(f.owner_id == user_id, and_(f.shared, f.project_id.in_(list(projects))))]
        if project_id is not None:
            where.append(f.project_id == project_id)
        if after is not None:
            where.append(tuple_(f.name, f.id) > after)
        rows = await self._session.execute(
            select(saved_filters).where(*where).order_by(f.name, f.id).limit(limit)
        )
        return [FILTERS.from_row(row) for row in rows.mappings()]
