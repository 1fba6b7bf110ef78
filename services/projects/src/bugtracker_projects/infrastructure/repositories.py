from __future__ import annotations

import uuid
from datetime import datetime

from bugtracker_shared.permissions import ProjectRole
from sqlalchemy import insert, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_projects.domain.errors import ProjectKeyTakenError
from bugtracker_projects.domain.projects import Member, Project
from bugtracker_projects.infrastructure.tables import memberships, projects


def _project(row: RowMapping) -> Project:
    return Project(
        id=row["id"],
        key=row["key"],
        name=row["name"],
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        archived_at=row["archived_at"],
        version=row["version"],
    )


def _member(row: RowMapping) -> Member:
    return Member(
        project_id=row["project_id"],
        user_id=row["user_id"],
        display_name=row["display_name"],
        role=ProjectRole(row["role"]),
        added_at=row["added_at"],
    )


class SqlProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, project: Project) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(projects).values(
                        id=project.id,
                        key=project.key,
                        name=project.name,
                        description=project.description,
                        created_by=project.created_by,
                        created_at=project.created_at,
                        updated_at=project.updated_at,
                        archived_at=project.archived_at,
                        version=project.version,
                    )
                )
        except IntegrityError as exc:  # a concurrent create took the key first
            raise ProjectKeyTakenError(f"The project key {project.key} is taken.") from exc

    async def get(self, project_id: uuid.UUID) -> Project | None:
        row = (
            await self._session.execute(select(projects).where(projects.c.id == project_id))
        ).first()
        return _project(row._mapping) if row else None

    async def get_by_key(self, key: str) -> Project | None:
        row = (await self._session.execute(select(projects).where(projects.c.key == key))).first()
        return _project(row._mapping) if row else None

    async def list_for(
        self, user_id: uuid.UUID | None, *, after_key: str | None, limit: int
    ) -> list[Project]:
        query = select(projects).order_by(projects.c.key).limit(limit)
        if user_id is not None:
            query = query.join(memberships, memberships.c.project_id == projects.c.id).where(
                memberships.c.user_id == user_id
            )
        if after_key is not None:
            query = query.where(projects.c.key > after_key)
        rows = (await self._session.execute(query)).mappings().all()
        return [_project(row) for row in rows]


class SqlMemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, member: Member) -> None:
        await self._session.execute(
            insert(memberships).values(
                project_id=member.project_id,
                user_id=member.user_id,
                display_name=member.display_name,
                role=member.role.value,
                added_at=member.added_at,
            )
        )

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
