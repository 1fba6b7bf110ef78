"""The auth service, asked over HTTP with the caller's own token."""

from __future__ import annotations

import uuid

import httpx
from bugtracker_shared.problems import UpstreamUnavailableError

from bugtracker_projects.application.ports import UserInfo


class HttpUserDirectory:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def get(self, user_id: uuid.UUID, *, token: str) -> UserInfo | None:
        try:
            response = await self._client.get(
                f"/api/v1/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError("The auth service cannot be reached.") from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code != httpx.codes.OK:
            raise UpstreamUnavailableError(f"The auth service answered {response.status_code}.")
        body = response.json()
        return UserInfo(
            id=uuid.UUID(body["id"]),
            display_name=str(body["display_name"]),
            is_active=bool(body["is_active"]),
            email=body.get("email"),
        )
