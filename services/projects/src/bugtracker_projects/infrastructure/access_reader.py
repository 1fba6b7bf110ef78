"""The membership lookup every ticket request makes, in one statement on the driver
connection (bugtracker_shared.db.driver_connection)."""

from __future__ import annotations

import uuid

from bugtracker_shared.db import driver_connection
from bugtracker_shared.permissions import ProjectRole
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_projects.application.ports import ProjectMemberships
from bugtracker_projects.domain.projects import Project
from bugtracker_projects.infrastructure.repositories import project_from_row

# The project and the caller's role in it (NULL for no membership), by id or by key.
_BY_ID = """
SELECT p.*, m.role AS member_role
FROM projects.projects p
LEFT JOIN projects.memberships m ON m.project_id = p.id AND m.user_id = $2
WHERE p.id = $1
"""
_BY_KEY = _BY_ID.replace("WHERE p.id = $1", "WHERE p.key = $1")

# A page of projects by id, each with its members' ids and roles (in user id order).
_MEMBERSHIPS = """
SELECT p.id, p.key, p.archived_at IS NOT NULL AS archived,
       p.deleted_at IS NOT NULL AS deleted, p.version,
       coalesce(array_agg(m.user_id ORDER BY m.user_id) FILTER (WHERE m.user_id IS NOT NULL),
                '{}') AS user_ids,
       coalesce(array_agg(m.role ORDER BY m.user_id) FILTER (WHERE m.user_id IS NOT NULL),
                '{}') AS roles
FROM projects.projects p
LEFT JOIN projects.memberships m ON m.project_id = p.id
WHERE $1::uuid IS NULL OR p.id > $1
GROUP BY p.id
ORDER BY p.id
LIMIT $2
"""

# Who shares a project with $1: the other members of its projects that are not deleted.
_CO_MEMBERS = """
SELECT DISTINCT other.user_id
FROM projects.memberships mine
JOIN projects.projects p ON p.id = mine.project_id AND p.deleted_at IS NULL
JOIN projects.memberships other ON other.project_id = mine.project_id
WHERE mine.user_id = $1 AND other.user_id <> $1
"""

# The members of $1 whose role is one of $2.
_WITH_ROLES = """
SELECT user_id FROM projects.memberships
WHERE project_id = $1 AND role = ANY($2::text[])
ORDER BY user_id
"""


class DriverAccessReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def project_and_role(
        self, ref: uuid.UUID | str, user_id: uuid.UUID
    ) -> tuple[Project, ProjectRole | None] | None:
        query = _BY_KEY if isinstance(ref, str) else _BY_ID
        async with driver_connection(self._engine) as conn:
            row = await conn.fetchrow(query, ref, user_id)
        if row is None:
            return None
        role = row["member_role"]
        return project_from_row(row), ProjectRole(role) if role else None

    async def memberships(self, *, after: uuid.UUID | None, limit: int) -> list[ProjectMemberships]:
        async with driver_connection(self._engine) as conn:
            rows = await conn.fetch(_MEMBERSHIPS, after, limit)
        return [
            ProjectMemberships(
                id=row["id"],
                key=row["key"],
                archived=row["archived"],
                deleted=row["deleted"],
                version=row["version"],
                members={
                    user_id: ProjectRole(role)
                    for user_id, role in zip(row["user_ids"], row["roles"], strict=True)
                },
            )
            for row in rows
        ]

    async def co_members(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        async with driver_connection(self._engine) as conn:
            rows = await conn.fetch(_CO_MEMBERS, user_id)
        return [row["user_id"] for row in rows]

    async def members_with_roles(
        self, project_id: uuid.UUID, roles: list[ProjectRole]
    ) -> list[uuid.UUID]:
        async with driver_connection(self._engine) as conn:
            rows = await conn.fetch(_WITH_ROLES, project_id, [role.value for role in roles])
        return [row["user_id"] for row in rows]
