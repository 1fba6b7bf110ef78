"""The auth service, asked over HTTP with the caller's own token."""

from __future__ import annotations

import uuid

import httpx
from bugtracker_shared.http_client import bearer, upstream_get

from bugtracker_projects.application.ports import UserInfo


class HttpUserDirectory:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def get(self, user_id: uuid.UUID, *, token: str) -> UserInfo | None:
        response = await upstream_get(
            self._client, f"/api/v1/users/{user_id}", headers=bearer(token), service="auth"
        )
        if response is None:
            return None
        body = response.json()
        return UserInfo(
            id=uuid.UUID(body["id"]),
            display_name=str(body["display_name"]),
            is_active=bool(body["is_active"]),
            email=body.get("email"),
        )
