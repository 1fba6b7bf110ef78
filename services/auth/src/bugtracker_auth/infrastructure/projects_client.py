"""The projects service, asked over HTTP with the deployment's internal token (it owns
memberships; auth keeps no copy of them, see docs/adr/0028)."""

from __future__ import annotations

import uuid

import httpx
from bugtracker_shared.internal import HEADER as INTERNAL_TOKEN_HEADER
from bugtracker_shared.problems import UpstreamUnavailableError


class HttpProjectDirectory:
    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._internal_token = internal_token

    async def co_members(self, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
        try:
            response = await self._client.get(
                f"/internal/users/{user_id}/co-members",
                headers={INTERNAL_TOKEN_HEADER: self._internal_token},
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError("The projects service cannot be reached.") from exc
        if response.status_code != httpx.codes.OK:
            raise UpstreamUnavailableError(f"The projects service answered {response.status_code}.")
        return frozenset(uuid.UUID(str(user)) for user in response.json()["user_ids"])
