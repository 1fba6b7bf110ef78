"""The projects service, asked over HTTP: the caller's role (with the caller's own token)
and, for a disabled webhook, the project's maintainers (internal, with the deployment's
internal token). Webhooks are managed rarely; no local view is kept (ADR 0043)."""

from __future__ import annotations

import uuid

import httpx
from bugtracker_shared.http_client import bearer, upstream_get, upstream_get_found
from bugtracker_shared.internal import HEADER
from bugtracker_shared.permissions import Permission
from bugtracker_shared.tokens import Principal

from bugtracker_webhooks.application.ports import ProjectAccess


class HttpProjectDirectory:
    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._internal_token = internal_token

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        response = await upstream_get(
            self._client,
            f"/api/v1/projects/{project_ref}/members/me",
            headers=bearer(caller.token),
            service="projects",
        )
        if response is None:
            return None
        body = response.json()
        return ProjectAccess(
            project_id=uuid.UUID(body["project_id"]),
            can_manage_webhooks=Permission.WEBHOOK_MANAGE.value in body["permissions"],
        )

    async def maintainers(self, project_id: uuid.UUID) -> list[uuid.UUID]:
        response = await upstream_get_found(
            self._client,
            f"/internal/projects/{project_id}/maintainers",
            headers={HEADER: self._internal_token},
            service="projects",
        )
        return [uuid.UUID(user_id) for user_id in response.json()["user_ids"]]
