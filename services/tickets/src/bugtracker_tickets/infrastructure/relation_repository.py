"""The RelationRepository port on PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class SqlRelationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
