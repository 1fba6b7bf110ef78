"""Helpers the notifications integration tests share (imported as
`services.notifications.tests.integration.helpers`: ruff bans relative imports)."""

from __future__ import annotations

from typing import Any

import httpx


async def notifications_of(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """The caller's notifications, newest first (up to 100)."""
    response = await client.get("/api/v1/notifications", params={"limit": 100}, headers=headers)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items
