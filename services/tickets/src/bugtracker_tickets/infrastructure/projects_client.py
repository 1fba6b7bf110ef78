"""The projects service, asked over HTTP with the caller's own token."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
from bugtracker_shared.http_client import bearer, upstream_get
from bugtracker_shared.permissions import Permission, ProjectRole
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import MemberInfo
from bugtracker_tickets.domain.tickets import ProjectAccess


class HttpProjectDirectory:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _get(self, path: str, token: str) -> httpx.Response | None:
        return await upstream_get(self._client, path, headers=bearer(token), service="projects")

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        response = await self._get(f"/api/v1/projects/{project_ref}/members/me", caller.token)
        if response is None:
            return None
        body = response.json()
        return ProjectAccess(
            project_id=uuid.UUID(body["project_id"]),
            project_key=str(body["project_key"]),
            archived=bool(body["archived"]),
            role=ProjectRole(body["role"]) if body["role"] else None,
            permissions=frozenset(Permission(p) for p in body["permissions"]),
        )

    async def is_member(self, project_id: uuid.UUID, user_id: uuid.UUID, caller: Principal) -> bool:
        path = f"/api/v1/projects/{project_id}/members/{user_id}"
        response = await self._get(path, caller.token)
        return response is not None

    async def _all(self, path: str, token: str) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `next_cursor`."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = f"{path}{'&' if '?' in path else '?'}limit=100"
            if cursor:
                query += f"&cursor={quote(cursor)}"
            response = await self._get(query, token)
            if response is None:
                return items
            body = response.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                return items

    async def members(self, project_id: uuid.UUID, caller: Principal) -> list[MemberInfo]:
        rows = await self._all(f"/api/v1/projects/{project_id}/members", caller.token)
        return [
            MemberInfo(
                user_id=uuid.UUID(row["user_id"]),
                display_name=str(row["display_name"]),
                email=row.get("email"),
            )
            for row in rows
        ]

    async def visible_projects(self, caller: Principal) -> list[uuid.UUID]:
        active = await self._all("/api/v1/projects", caller.token)
        archived = await self._all("/api/v1/projects?archived=true", caller.token)
        return [uuid.UUID(row["id"]) for row in active + archived]
