"""The webhooks service on the run's real PostgreSQL and RabbitMQ, delivering to real
HTTP receivers on 127.0.0.1. What stands in for other services: auth's keys (a test key
serves the JWKS) and the projects service's two answers (who may manage a project's
webhooks, and its maintainers), both at the HTTP boundary."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import jwt
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.events import CONTENT_TYPE, CloudEvent
from bugtracker_shared.messaging import declare_exchange
from bugtracker_testkit import app_client, eventually
from bugtracker_webhooks.main import create_app
from bugtracker_webhooks.settings import Settings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jwt.algorithms import OKPAlgorithm

JWKS_URL = "http://auth.test/.well-known/jwks.json"
PROJECTS_URL = "http://projects.test"
SECRET_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes, tests only


@dataclass
class Directory:
    """Auth's keys and the projects service's answers, as the service asks for them."""

    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    # project id -> user id -> role
    members: dict[uuid.UUID, dict[uuid.UUID, str]] = field(default_factory=dict)

    def token(self, user_id: uuid.UUID) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": "bugtracker-auth",
            "aud": "bugtracker",
            "sub": str(user_id),
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=10)).timestamp()),
            "role": "member",
        }
        return jwt.encode(
            claims, self.private_key, algorithm="EdDSA", headers={"kid": "k", "typ": "at+jwt"}
        )

    def headers(self, user_id: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def _user_of(self, request: httpx.Request) -> uuid.UUID:
        token = request.headers["authorization"].removeprefix("Bearer ")
        return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sub"])

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if str(request.url) == JWKS_URL:
            jwk = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
            return httpx.Response(200, json={"keys": [jwk | {"kid": "k", "alg": "EdDSA"}]})
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "projects"] and parts[4:] == ["members", "me"]:
            project_id = uuid.UUID(parts[3])
            role = self.members.get(project_id, {}).get(self._user_of(request))
            if role is None:
                return httpx.Response(404)
            manages = role in ("maintainer", "owner")
            permissions = ["project.read"] + (["webhook.manage"] if manages else [])
            return httpx.Response(
                200,
                json={"project_id": str(project_id), "role": role, "permissions": permissions},
            )
        if parts[0] == "internal" and parts[-1] == "maintainers":
            members = self.members.get(uuid.UUID(parts[2]), {})
            ids = [str(u) for u, r in members.items() if r in ("maintainer", "owner")]
            return httpx.Response(200, json={"user_ids": ids})
        return httpx.Response(404)

    def project(self, **people: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
        project_id = uuid.uuid4()
        ids = {name: uuid.uuid4() for name in people}
        self.members[project_id] = {ids[name]: role for name, role in people.items()}
        return project_id, ids


@pytest.fixture
def directory() -> Directory:
    return Directory()


def webhooks_settings(infra: Stack, **overrides: Any) -> Settings:
    """The service as deployed (its own database role and broker user), with receivers
    on 127.0.0.1 allowed and a schedule of retries short enough for a test."""
    values: dict[str, Any] = {
        "database_url": infra.database_url("webhooks"),
        "amqp_url": infra.amqp_url("webhooks"),
        "jwks_url": JWKS_URL,
        "projects_url": PROJECTS_URL,
        "internal_token": "internal-token-for-tests-0123456789",
        "allowed_hosts": "127.0.0.1,localhost",
        "retry_schedule": "0.2,0.2,0.2",
        "secret_key": SECRET_KEY,
        "poll_seconds": 0.2,
    }
    return Settings(**(values | overrides))


AppFactory = Callable[..., FastAPI]


@pytest.fixture
async def make_app(infra: Stack, directory: Directory) -> AppFactory:
    migrated(infra, "webhooks")
    await truncate_schema(infra, "webhooks")

    def make(**overrides: Any) -> FastAPI:
        return create_app(
            webhooks_settings(infra, **overrides),
            http_transport=httpx.MockTransport(directory.handle),
        )

    return make


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with running(make_app()) as client:
        yield client


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app running and ready (its queue declared and consumed), called in-process."""
    async with app_client(app) as client:

        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == httpx.codes.OK

        await eventually(ready, what="the webhooks service to be ready")
        yield client


Publish = Callable[[CloudEvent], Awaitable[None]]


@pytest.fixture
async def publish(infra: Stack) -> AsyncIterator[Publish]:
    """Publish an event to RabbitMQ as the producing service's outbox relay does."""
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel)

        async def send(event: CloudEvent) -> None:
            body = event.model_dump_json(exclude_none=True).encode()
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type=CONTENT_TYPE,
                    message_id=str(event.id),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=event.name,
            )

        yield send
    finally:
        await connection.close()
