"""`GET /api/v1/users`: a search, not a list of every account. Auth asks a real projects
app (in process, on the test database) who shares a project with the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_auth.main import create_app as create_auth_app
from bugtracker_auth.settings import Settings as AuthSettings
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_projects.main import create_app as create_projects_app
from bugtracker_projects.settings import Settings as ProjectsSettings
from bugtracker_testkit import app_client

pytestmark = pytest.mark.integration

PASSWORD = "plum lantern orbit quietly 47"
INTERNAL_TOKEN = "internal-test-token"


@dataclass
class Apps:
    auth: httpx.AsyncClient
    projects: httpx.AsyncClient


@pytest.fixture
async def apps(infra: Stack, auth_settings: AuthSettings) -> AsyncIterator[Apps]:
    migrated(infra, "projects")
    await truncate_schema(infra, "projects")
    # Each app calls the other through an in-process transport: auth asks projects for
    # shared projects, projects asks auth for the JWKS and for a new member's profile.
    apps: dict[str, Any] = {}

    async def projects_asgi(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await apps["projects"](scope, receive, send)

    auth_app = create_auth_app(
        auth_settings.model_copy(update={"projects_url": "http://projects.test"}),
        projects_transport=httpx.ASGITransport(app=projects_asgi),
    )
    apps["projects"] = create_projects_app(
        ProjectsSettings(
            database_url=infra.database_url("projects"),
            amqp_url=infra.rabbitmq.url,
            auth_url="http://auth.test",
            jwks_url="http://auth.test/.well-known/jwks.json",
            internal_token=INTERNAL_TOKEN,
        ),
        auth_transport=httpx.ASGITransport(app=auth_app),
    )
    async with app_client(auth_app) as auth, app_client(apps["projects"]) as projects:
        yield Apps(auth, projects)


async def test_the_directory_needs_a_query_of_three_characters(apps: Apps, kit: Any) -> None:
    zed = await kit.register_and_login(apps.auth, "zed")
    for query in ("", "?q=", "?q=ab", "?q=%20%20ab%20"):
        response = await apps.auth.get(f"/api/v1/users{query}", headers=zed.headers)
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert problem["errors"][0]["loc"] == ["query", "q"]


async def test_users_see_people_they_share_a_project_with_and_exact_emails_only(
    apps: Apps, kit: Any, superuser_db: asyncpg.Connection
) -> None:
    zed = await kit.register_and_login(apps.auth, "zed")
    alice = await kit.register_and_login(apps.auth, "alice")
    alina = await kit.register_and_login(apps.auth, "alina")
    created = await apps.projects.post(
        "/api/v1/projects", json={"key": "DIR", "name": "Directory"}, headers=zed.headers
    )
    assert created.status_code == 201, created.text
    added = await apps.projects.post(
        "/api/v1/projects/DIR/members",
        json={"user_id": str(alice.user_id), "role": "developer"},
        headers=zed.headers,
    )
    assert added.status_code == 201, added.text

    async def search(caller: Any, q: str) -> list[dict[str, Any]]:
        response = await apps.auth.get("/api/v1/users", params={"q": q}, headers=caller.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    # A project member finds the other member, with the email; not the stranger Alina.
    assert await search(zed, "ali") == [
        {"id": str(alice.user_id), "display_name": "Alice", "email": alice.email}
    ]
    assert [u["id"] for u in await search(alice, "zed")] == [str(zed.user_id)]
    # A stranger is found only by the exact email, and without it in the answer.
    assert await search(zed, alina.email.upper()) == [
        {"id": str(alina.user_id), "display_name": "Alina", "email": None}
    ]
    assert await search(zed, alina.email[:-1]) == []
    assert await search(alina, "zed") == []
    assert await search(alina, "ali") == [
        {"id": str(alina.user_id), "display_name": "Alina", "email": alina.email}
    ]
    # A deleted project shares nothing any more.
    deleted = await apps.projects.delete("/api/v1/projects/DIR", headers=zed.headers)
    assert deleted.status_code == 204, deleted.text
    assert await search(zed, "ali") == []

    # An admin searches everyone, emails included (the role is read from the database).
    await superuser_db.execute("UPDATE auth.users SET role = 'admin' WHERE id = $1", alina.user_id)
    found = await search(alina, "ali")
    assert {(u["display_name"], u["email"]) for u in found} == {
        ("Alice", alice.email),
        ("Alina", alina.email),
    }
