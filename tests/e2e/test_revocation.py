"""Revocation through the whole system: auth's outbox, RabbitMQ, the gateway's list.

The old access token is presented on a projects path: projects does not look sessions up,
so a refusal there is the gateway's own doing, not the auth service's database check."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from bugtracker_testkit import PASSWORD, register

pytestmark = pytest.mark.e2e

REVOCATION_DEADLINE_SECONDS = 1.0


def login(api: httpx.Client, email: str, password: str) -> dict[str, Any]:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def refused_within(api: httpx.Client, headers: dict[str, str], deadline_seconds: float) -> float:
    """Poll a projects path until the gateway refuses the token; seconds it took."""
    started = time.monotonic()
    while True:
        response = api.get("/api/v1/projects", headers=headers)
        elapsed = time.monotonic() - started
        if response.status_code == 401:
            assert response.json()["code"] == "token_revoked", response.text
            return elapsed
        assert response.status_code == 200, response.text
        assert elapsed < deadline_seconds, f"token still accepted after {elapsed:.2f}s"
        time.sleep(0.01)


def test_a_deactivated_users_old_token_is_refused_within_a_second(
    api: httpx.Client, system: Any
) -> None:
    user_id, email = register(api, "dora")
    tokens = login(api, email, PASSWORD)
    assert api.get("/api/v1/projects", headers=bearer(tokens)).status_code == 200
    admin = bearer(login(api, system.admin_email, system.admin_password))

    deactivated = api.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=admin)

    assert deactivated.status_code == 200, deactivated.text
    refused_within(api, bearer(tokens), REVOCATION_DEADLINE_SECONDS)
    relogin = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert relogin.status_code == 401
    assert relogin.json()["code"] == "invalid_credentials"
    again = api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


def test_logout_and_refresh_reuse_are_refused_by_the_gateway(api: httpx.Client) -> None:
    _, email = register(api, "lou")
    first = login(api, email, PASSWORD)
    second = login(api, email, PASSWORD)

    assert api.post("/api/v1/auth/logout", headers=bearer(first)).status_code == 204
    refused_within(api, bearer(first), REVOCATION_DEADLINE_SECONDS)

    rotated = api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert reuse.status_code == 401
    refused_within(api, bearer(rotated.json()), REVOCATION_DEADLINE_SECONDS)


def test_the_internal_endpoint_is_not_reachable_through_the_gateway(api: httpx.Client) -> None:
    response = api.get("/internal/revoked-sessions")
    assert response.status_code in (401, 404)
    assert "items" not in response.text
