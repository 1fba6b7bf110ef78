from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import respx
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.permissions import ROLE_PERMISSIONS, ProjectRole
from bugtracker_testkit import TokenMinter, app_client
from bugtracker_tickets.main import create_app
from bugtracker_tickets.settings import Settings

PROJECTS_URL = "http://projects.test"


@dataclass
class FakeProject:
    id: uuid.UUID
    key: str
    members: dict[uuid.UUID, ProjectRole]
    archived: bool = False
    names: dict[uuid.UUID, str] = field(default_factory=dict)


@dataclass
class FakeProjects:
    """The two projects-service endpoints tickets calls, answered by a respx router."""

    projects: dict[uuid.UUID, FakeProject] = field(default_factory=dict)
    router: respx.Router = field(default_factory=lambda: respx.Router(base_url=PROJECTS_URL))
    calls: int = 0

    def __post_init__(self) -> None:
        self.router.get(path__regex=r"^/api/v1/projects/(?P<ref>[^/]+)/members/me$").mock(
            side_effect=self._me
        )
        self.router.get(
            path__regex=r"^/api/v1/projects/(?P<ref>[^/]+)/members/(?P<user_id>[0-9a-f-]{36})$"
        ).mock(side_effect=self._member)
        self.router.get(path__regex=r"^/api/v1/projects/(?P<ref>[^/]+)/members$").mock(
            side_effect=self._members
        )
        self.router.get(path__regex=r"^/api/v1/projects$").mock(side_effect=self._projects)

    def add(self, key: str, members: dict[uuid.UUID, ProjectRole]) -> FakeProject:
        project = FakeProject(uuid.uuid4(), key, dict(members))
        self.projects[project.id] = project
        return project

    def _caller(self, request: httpx.Request) -> uuid.UUID:
        token = request.headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        return uuid.UUID(claims["sub"])

    def _find(self, ref: str) -> FakeProject | None:
        for project in self.projects.values():
            if ref in (str(project.id), project.key):
                return project
        return None

    def _me(self, request: httpx.Request, ref: str) -> httpx.Response:
        self.calls += 1
        project = self._find(ref)
        role = project.members.get(self._caller(request)) if project else None
        if project is None or role is None:
            return httpx.Response(404, json={"code": "not_found"})
        return httpx.Response(
            200,
            json={
                "project_id": str(project.id),
                "project_key": project.key,
                "archived": project.archived,
                "role": role.value,
                "permissions": sorted(ROLE_PERMISSIONS[role]),
            },
        )

    def _members(self, request: httpx.Request, ref: str) -> httpx.Response:
        project = self._find(ref)
        if project is None or self._caller(request) not in project.members:
            return httpx.Response(404, json={"code": "not_found"})
        items = [
            {
                "user_id": str(user_id),
                "display_name": project.names.get(user_id, f"user-{str(user_id)[:8]}"),
                "email": f"{str(user_id)[:8]}@example.com",
                "role": role.value,
            }
            for user_id, role in project.members.items()
        ]
        return httpx.Response(200, json={"items": items, "next_cursor": None})

    def _projects(self, request: httpx.Request) -> httpx.Response:
        caller = self._caller(request)
        archived = request.url.params.get("archived") == "true"
        items = [
            {"id": str(p.id), "key": p.key}
            for p in self.projects.values()
            if caller in p.members and p.archived == archived
        ]
        return httpx.Response(200, json={"items": items, "next_cursor": None})

    def _member(self, request: httpx.Request, ref: str, user_id: str) -> httpx.Response:
        project = self._find(ref)
        if project is None or self._caller(request) not in project.members:
            return httpx.Response(404, json={"code": "not_found"})
        role = project.members.get(uuid.UUID(user_id))
        if role is None:
            return httpx.Response(404, json={"code": "not_found"})
        return httpx.Response(200, json={"user_id": user_id, "role": role.value})


@dataclass
class TicketsApi:
    client: httpx.AsyncClient
    tokens: TokenMinter
    projects: FakeProjects

    def headers(self, user_id: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(user_id)}"}

    async def create(
        self, user_id: uuid.UUID, project_ref: str, **fields: object
    ) -> httpx.Response:
        body = {"title": "Login fails"} | fields
        return await self.client.post(
            f"/api/v1/projects/{project_ref}/tickets", json=body, headers=self.headers(user_id)
        )


TicketsApiFactory = Callable[..., AbstractAsyncContextManager[TicketsApi]]


@pytest.fixture
def open_tickets_api(infra: Stack) -> TicketsApiFactory:
    """The tickets app on the test run's PostgreSQL and RabbitMQ, with faked projects;
    keyword arguments override its settings."""

    @asynccontextmanager
    async def open_(**overrides: Any) -> AsyncIterator[TicketsApi]:
        migrated(infra, "tickets")
        await truncate_schema(infra, "tickets")
        tokens = TokenMinter()
        projects = FakeProjects()
        settings = Settings(
            database_url=infra.database_url("tickets"),
            amqp_url=infra.rabbitmq.url,
            projects_url=PROJECTS_URL,
        ).model_copy(update=overrides)
        app = create_app(
            settings,
            projects_transport=httpx.MockTransport(projects.router.handler),
            jwks_fetcher=tokens.fetch_jwks,
        )
        async with app_client(app) as client:
            yield TicketsApi(client, tokens, projects)

    return open_


@pytest.fixture
async def tickets_api(open_tickets_api: TicketsApiFactory) -> AsyncIterator[TicketsApi]:
    async with open_tickets_api() as api:
        yield api
