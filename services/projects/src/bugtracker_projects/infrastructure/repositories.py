from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from bugtracker_shared.db import escape_like
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.rows import Columns
from sqlalchemy import Select, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_projects.application.ports import ProjectFilter
from bugtracker_projects.domain.errors import ProjectKeyTakenError
from bugtracker_projects.domain.projects import Member, Project
from bugtracker_projects.infrastructure.tables import memberships, projects

PROJECTS = Columns(Project, projects)
# What an update may change: everything but the identity and the creation.
_PROJECT_CHANGES = PROJECTS.without("id", "key", "created_by", "created_at")
MEMBERS = Columns(Member, memberships, load={"role": ProjectRole})
project_from_row = PROJECTS.from_row
_member = MEMBERS.from_row


class SqlProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, project: Project) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(projects).values(PROJECTS.values(project)))
        except IntegrityError as exc:  # a concurrent create took the key first
            raise ProjectKeyTakenError(f"The project key {project.key} is taken.") from exc

    async def _one(self, query: Select[Any], *, for_update: bool) -> Project | None:
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return project_from_row(row) if row else None

    async def get(self, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
        query = select(projects).where(projects.c.id == project_id)
        return await self._one(query, for_update=for_update)

    async def get_by_key(self, key: str, *, for_update: bool = False) -> Project | None:
        return await self._one(select(projects).where(projects.c.key == key), for_update=for_update)

    async def update(self, project: Project) -> None:
        await self._session.execute(
            update(projects)
            .where(projects.c.id == project.id)
            .values(_PROJECT_CHANGES.values(project))
        )

    async def list(
        self, where: ProjectFilter, *, after_key: str | None, limit: int
    ) -> list[Project]:
        query = (
            select(projects)
            .where(projects.c.deleted_at.is_(None))
            .where(
                projects.c.archived_at.is_not(None)
                if where.archived
                else projects.c.archived_at.is_(None)
            )
            .order_by(projects.c.key)
            .limit(limit)
        )
        if where.member_id is not None:
            query = query.join(memberships, memberships.c.project_id == projects.c.id).where(
                memberships.c.user_id == where.member_id
            )
        if where.q:
            pattern = f"%{escape_like(where.q)}%"
            query = query.where(or_(projects.c.key.ilike(pattern), projects.c.name.ilike(pattern)))
        if after_key is not None:
            query = query.where(projects.c.key > after_key)
        rows = (await self._session.execute(query)).mappings().all()
        return [project_from_row(row) for row in rows]


class SqlMemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, member: Member) -> None:
        await self._session.execute(insert(memberships).values(MEMBERS.values(member)))

    async def role_of(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectRole | None:
        role = await self._session.scalar(
            select(memberships.c.role).where(
                memberships.c.project_id == project_id, memberships.c.user_id == user_id
            )
        )
        return ProjectRole(role) if role else None

    async def get(self, project_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
        row = (
            await self._session.execute(
                select(memberships).where(
                    memberships.c.project_id == project_id, memberships.c.user_id == user_id
                )
            )
        ).first()
        return _member(row._mapping) if row else None

    async def list(
        self, project_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Member]:
        query = (
            select(memberships)
            .where(memberships.c.project_id == project_id)
            .order_by(memberships.c.added_at, memberships.c.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(memberships.c.added_at, memberships.c.user_id) > after)
        rows = (await self._session.execute(query)).mappings().all()
        return [_member(row) for row in rows]

    async def count_owners(self, project_id: uuid.UUID) -> int:
        count = await self._session.scalar(
            select(func.count()).where(
                memberships.c.project_id == project_id,
                memberships.c.role == ProjectRole.OWNER.value,
            )
        )
        return int(count or 0)

    async def update_role(self, member: Member) -> None:
        await self._session.execute(
            update(memberships)
            .where(
                memberships.c.project_id == member.project_id,
                memberships.c.user_id == member.user_id,
            )
            .values(role=member.role.value)
        )

    async def remove(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._session.execute(
            delete(memberships).where(
                memberships.c.project_id == project_id, memberships.c.user_id == user_id
            )
        )
