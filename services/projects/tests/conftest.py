from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import respx
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_projects.main import create_app
from bugtracker_projects.settings import Settings
from bugtracker_testkit import TokenMinter, app_client

AUTH_URL = "http://auth.test"


@dataclass
class FakeAuth:
    """The auth service's `GET /api/v1/users/{id}`, answered by a respx router."""

    users: dict[uuid.UUID, dict[str, object]] = field(default_factory=dict)
    router: respx.Router = field(default_factory=lambda: respx.Router(base_url=AUTH_URL))

    def __post_init__(self) -> None:
        self.router.get(path__regex=r"^/api/v1/users/(?P<user_id>[^/]+)$").mock(
            side_effect=self._user
        )

    def _user(self, request: httpx.Request, user_id: str) -> httpx.Response:
        user = self.users.get(uuid.UUID(user_id))
        if user is None:
            return httpx.Response(404, json={"code": "not_found"})
        return httpx.Response(200, json=user)

    def add(self, display_name: str, *, is_active: bool = True) -> uuid.UUID:
        user_id = uuid.uuid4()
        self.users[user_id] = {
            "id": str(user_id),
            "display_name": display_name,
            "email": f"{display_name.lower()}@example.com",
            "is_active": is_active,
        }
        return user_id


@dataclass
class ProjectsApi:
    client: httpx.AsyncClient
    tokens: TokenMinter
    auth: FakeAuth

    def headers(self, user_id: uuid.UUID, role: str = "member") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(user_id, role=role)}"}

    async def create_project(self, owner: uuid.UUID, key: str = "BUG") -> dict[str, object]:
        response = await self.client.post(
            "/api/v1/projects",
            json={"key": key, "name": f"{key} project"},
            headers=self.headers(owner),
        )
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
async def projects_api(infra: Stack) -> AsyncIterator[ProjectsApi]:
    migrated(infra, "projects")
    await truncate_schema(infra, "projects")
    tokens = TokenMinter()
    auth = FakeAuth()
    settings = Settings(
        database_url=infra.database_url("projects"),
        amqp_url=infra.rabbitmq.url,
        auth_url=AUTH_URL,
    )
    app = create_app(
        settings,
        auth_transport=httpx.MockTransport(auth.router.handler),
        jwks_fetcher=tokens.fetch_jwks,
    )
    async with app_client(app) as client:
        yield ProjectsApi(client, tokens, auth)


UserFactory = Callable[[str], uuid.UUID]
