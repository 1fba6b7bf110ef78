from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_notifications.main import create_app
from bugtracker_notifications.settings import Settings
from bugtracker_shared.event_schemas import Bulk, TicketAssigned
from bugtracker_shared.events import CONTENT_TYPE, CloudEvent, new_event
from bugtracker_shared.messaging import declare_exchange
from bugtracker_testkit import app_client, eventually
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jwt.algorithms import OKPAlgorithm

JWKS_URL = "http://auth.test/.well-known/jwks.json"


class TestKeys:
    """An Ed25519 key standing in for auth's: mints access tokens with every contract
    claim and serves its JWKS the way auth does."""

    __test__ = False

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.private_key = Ed25519PrivateKey.generate()

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def token(
        self, user_id: uuid.UUID, *, role: str = "member", ttl: timedelta = timedelta(minutes=10)
    ) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": "bugtracker-auth",
            "aud": "bugtracker",
            "sub": str(user_id),
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "role": role,
        }
        return jwt.encode(
            claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "at+jwt"}
        )

    def headers(self, user_id: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def transport(self) -> httpx.MockTransport:
        """What the service's JWKS client talks to instead of the auth service."""

        def handle(request: httpx.Request) -> httpx.Response:
            if str(request.url) == JWKS_URL:
                return httpx.Response(200, json=self.jwks())
            return httpx.Response(404)

        return httpx.MockTransport(handle)


@pytest.fixture
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture
def poll() -> Callable[..., Awaitable[Any]]:
    return eventually


@pytest.fixture
async def app(infra: Stack, keys: TestKeys) -> FastAPI:
    migrated(infra, "notifications")
    await truncate_schema(infra, "notifications")
    return create_app(notifications_settings(infra), http_transport=keys.transport())


def notifications_settings(infra: Stack) -> Settings:
    """The service as deployed: its own database role and its own RabbitMQ user."""
    return Settings(
        database_url=infra.database_url("notifications"),
        amqp_url=infra.amqp_url("notifications"),
        jwks_url=JWKS_URL,
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app running, ready (its queue is declared and consumed), called in-process."""
    async with app_client(app) as client:

        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == httpx.codes.OK

        await eventually(ready, what="the service to be ready")
        yield client


@pytest.fixture
def second_replica(
    infra: Stack, keys: TestKeys
) -> Callable[[], AbstractAsyncContextManager[FastAPI]]:
    """Another replica of the service on the same database and queue, started and
    consuming inside the block."""

    @asynccontextmanager
    async def run() -> AsyncIterator[FastAPI]:
        second = create_app(notifications_settings(infra), http_transport=keys.transport())
        async with LifespanManager(second, startup_timeout=30):

            async def consuming() -> bool:
                return bool(second.state.runtime.broker.is_ready)

            await eventually(consuming, what="the second replica to consume")
            yield second

    return run


Publish = Callable[[CloudEvent], Awaitable[None]]


@pytest.fixture
async def publish(infra: Stack) -> AsyncIterator[Publish]:
    """Publish an event to RabbitMQ as the tickets service's outbox relay does."""
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await declare_exchange(channel)

        async def send(event: CloudEvent) -> None:
            body = json.dumps(event.model_dump(mode="json", exclude_none=True)).encode()
            await exchange.publish(
                aio_pika.Message(
                    body,
                    content_type=CONTENT_TYPE,
                    message_id=str(event.id),
                    correlation_id=event.correlationid,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=event.name,
                mandatory=True,  # fail loudly if no queue is bound yet
            )

        yield send
    finally:
        await connection.close()


def ticket_assigned(
    *,
    actor_id: uuid.UUID | None,
    assignee_id: uuid.UUID | None,
    previous_assignee_id: uuid.UUID | None = None,
    key: str = "BUG-1",
    title: str = "Crash on save",
    ticket_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    bulk: Bulk | None = None,
) -> CloudEvent:
    """A `ticket.assigned` event shaped as the tickets service publishes it (with
    `bulk`, one of the events of a bulk change)."""
    ticket_id = ticket_id or uuid.uuid4()
    return new_event(
        "ticket.assigned",
        service="tickets",
        subject=ticket_id,
        sequence=2,
        data=TicketAssigned(
            id=ticket_id,
            key=key,
            project_id=project_id or uuid.uuid4(),
            title=title,
            type="bug",
            priority="high",
            status="open",
            resolution=None,
            reporter_id=actor_id or uuid.uuid4(),
            assignee_id=assignee_id,
            labels=[],
            due_date=None,
            version=2,
            created_at=datetime.now(UTC),
            updated_at=datetime.now(UTC),
            deleted=False,
            watchers=[],
            changes={
                "assignee_id": {
                    "from": str(previous_assignee_id) if previous_assignee_id else None,
                    "to": str(assignee_id) if assignee_id else None,
                }
            },
            bulk=bulk,
        ),
        actor_id=actor_id,
        correlation_id="test-correlation-id",
    )


@pytest.fixture
def assigned() -> Callable[..., CloudEvent]:
    return ticket_assigned
