"""The projects service, asked over HTTP with the deployment's internal token (it owns
memberships; auth keeps no copy of them, see docs/adr/0028)."""

from __future__ import annotations

import uuid

import httpx
from bugtracker_shared.http_client import upstream_get_found
from bugtracker_shared.internal import HEADER as INTERNAL_TOKEN_HEADER


class HttpProjectDirectory:
    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._internal_token = internal_token

    async def co_members(self, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
        response = await upstream_get_found(
            self._client,
            f"/internal/users/{user_id}/co-members",
            headers={INTERNAL_TOKEN_HEADER: self._internal_token},
            service="projects",
        )
        return frozenset(uuid.UUID(str(user)) for user in response.json()["user_ids"])
