from __future__ import annotations

from typing import Any

import httpx
import pytest
from bugtracker_gateway.routing import backend_for


@pytest.mark.parametrize(
    ("path", "backend"),
    [
        ("/api/v1/projects/PRJ/tickets", "tickets"),
        ("/api/v1/projects/0b0e/tickets/", "tickets"),
        ("/api/v1/projects/PRJ/tickets/export", "tickets"),
        ("/api/v1/projects//tickets", "projects"),
        ("/api/v1/projects/PRJ/members", "projects"),
        ("/api/v1/projects/PRJ/activity", "tickets"),
        ("/api/v1/projects//activity", "projects"),
        ("/api/v1/projects", "projects"),
        ("/api/v1/projects/PRJ", "projects"),
        ("/api/v1/auth/login", "auth"),
        ("/api/v1/users", "auth"),
        ("/api/v1/users/me", "auth"),
        ("/api/v1/users/me/tokens", "auth"),
        ("/api/v1/users/me/notification-preferences", "notifications"),
        ("/api/v1/users/me/notification-preferences/", "notifications"),
        ("/api/v1/users/me/notification-preferencesx", "auth"),
        ("/api/v1/users/0b0e/notification-preferences", "auth"),
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/tickets", "tickets"),
        ("/api/v1/tickets/PRJ-1/comments", "tickets"),
        ("/api/v1/notifications/unread-count", "notifications"),
        ("/api/v1/projects/PRJ/webhooks", "webhooks"),
        ("/api/v1/projects/0b0e/webhooks/", "webhooks"),
        ("/api/v1/projects//webhooks", "projects"),
        ("/api/v1/webhooks", "webhooks"),
        ("/api/v1/webhooks/0b0e/deliveries/1/redeliver", "webhooks"),
        ("/api/v1/webhooksx", None),
        ("/api/v1/projectsx", None),
        ("/api/v1/unknown", None),
        ("/api/v2/projects", None),
        ("/api/v1/auth/../projects", None),
        ("/api/v1/projects/./x", None),
        ("/", None),
        ("", None),
    ],
)
def test_the_first_matching_prefix_names_the_backend(path: str, backend: str | None) -> None:
    assert backend_for(path) == backend


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("GET", "/api/v1/projects", "projects"),
        ("POST", "/api/v1/projects", "projects"),
        ("GET", "/api/v1/projects/PRJ", "projects"),
        ("POST", "/api/v1/projects/PRJ/tickets", "tickets"),
        ("GET", "/api/v1/projects/PRJ/tickets?status=open&status=done", "tickets"),
        ("DELETE", "/api/v1/projects/PRJ/members/u1", "projects"),
        ("GET", "/api/v1/users/me", "auth"),
        ("POST", "/api/v1/auth/logout", "auth"),
        ("PATCH", "/api/v1/tickets/PRJ-1", "tickets"),
        ("PUT", "/api/v1/tickets/PRJ-1/assignee", "tickets"),
        ("GET", "/api/v1/notifications/unread-count", "notifications"),
        ("GET", "/api/v1/users/me/notification-preferences", "notifications"),
        ("PUT", "/api/v1/users/me/notification-preferences", "notifications"),
        ("POST", "/api/v1/projects/PRJ/webhooks", "webhooks"),
        ("GET", "/api/v1/projects/PRJ/webhooks?limit=10", "webhooks"),
        ("PATCH", "/api/v1/webhooks/0b0e", "webhooks"),
        ("POST", "/api/v1/webhooks/0b0e/ping", "webhooks"),
    ],
)
async def test_requests_reach_the_backend_of_their_path(
    gateway: httpx.AsyncClient,
    backends: dict[str, Any],
    auth_headers: dict[str, str],
    method: str,
    path: str,
    service: str,
) -> None:
    response = await gateway.request(method, path, headers=auth_headers)

    assert response.status_code == 200
    assert response.json()["service"] == service
    assert response.json()["method"] == method
    assert response.json()["path_qs"] == path
    others = [name for name in backends if name != service]
    assert all(backends[name].proxied() == [] for name in others)


@pytest.mark.parametrize("path", ["/api/v1/unknown", "/api/v2/projects", "/api/v1/projectsx", "/x"])
async def test_a_path_no_backend_serves_is_a_404_problem(
    gateway: httpx.AsyncClient,
    backends: dict[str, Any],
    auth_headers: dict[str, str],
    path: str,
) -> None:
    response = await gateway.get(path, headers=auth_headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert all(fake.proxied() == [] for fake in backends.values())
