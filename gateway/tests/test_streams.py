"""Event streams at the gateway (docs/adr/0026): a connection pool of their own, a cap
per user, and an end at the token's expiry, after the maximum lifetime, and when the
session is revoked or the user deactivated.

The notifications backend here holds each stream open (one event, then nothing) until the
test ends, like the real one between notifications.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bugtracker_gateway.main import create_app
from bugtracker_gateway.settings import Settings
from bugtracker_shared.events import raw_event
from bugtracker_testkit import app_client
from fastapi import FastAPI

from gateway.tests.conftest import mint_token, openapi_documents

STREAM = "/api/v1/notifications/stream"
FIRST_EVENT = 'data: {"hello": 1}'
WAIT = 10.0  # the most any awaited outcome may take before the test fails


@dataclass
class HoldingNotifications:
    """Stands in for the notifications service: its streams stay open until released."""

    opened: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get(STREAM, self.stream)
        app.router.add_get("/api/v1/notifications", self.listing)
        return app

    async def ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_documents()["notifications"])

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"{FIRST_EVENT}\n\n".encode())
        async with self.changed:
            self.opened += 1
            self.changed.notify_all()
        await self.release.wait()
        await response.write_eof()
        return response

    async def wait_opened(self, count: int) -> None:
        async with asyncio.timeout(WAIT), self.changed:
            await self.changed.wait_for(lambda: self.opened >= count)


@pytest.fixture
async def notifications() -> AsyncIterator[HoldingNotifications]:
    fake = HoldingNotifications()
    fake.server = TestServer(fake.app())
    await fake.server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        await fake.server.close()


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI
    tasks: list[asyncio.Task[httpx.Response]] = field(default_factory=list)

    def open_stream(self, token: str) -> asyncio.Task[httpx.Response]:
        """A stream request, running until the gateway finishes its answer (the in-process
        transport hands the answer over once it is complete)."""
        task = asyncio.create_task(
            self.client.get(STREAM, headers={"Authorization": f"Bearer {token}"})
        )
        self.tasks.append(task)
        return task

    @property
    def open_streams(self) -> int:
        return len(self.app.state.streams)


GatewayOpener = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def open_gateway_with_streams(
    settings: Settings, notifications: HoldingNotifications
) -> GatewayOpener:
    @asynccontextmanager
    async def open_(**overrides: Any) -> AsyncIterator[Gateway]:
        app = create_app(
            settings.model_copy(update={"notifications_url": notifications.url, **overrides})
        )
        async with app_client(app) as client:
            gateway = Gateway(client, app)
            try:
                yield gateway
            finally:
                notifications.release.set()  # the backend ends what is still open
                await asyncio.gather(*gateway.tasks, return_exceptions=True)

    return open_


async def within(seconds: float, call: Awaitable[httpx.Response]) -> httpx.Response:
    async with asyncio.timeout(seconds):
        return await call


async def test_a_users_streams_leave_other_requests_and_the_health_probes_alone(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    # As many streams as the backend pool has connections, from one user allowed them all.
    async with open_gateway_with_streams(
        stream_limit_per_user=100, pool_limit_per_backend=100
    ) as gateway:
        hog = mint_token()
        for _ in range(100):
            gateway.open_stream(hog)
        await notifications.wait_opened(100)

        other = {"Authorization": f"Bearer {mint_token()}"}
        listing = await within(1.0, gateway.client.get("/api/v1/notifications", headers=other))
        health = await within(1.0, gateway.client.get("/health"))

        assert listing.status_code == 200
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert not any(task.done() for task in gateway.tasks)  # the 100 streams are still open


async def test_streams_beyond_a_users_cap_are_refused_and_the_others_go_on(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    async with open_gateway_with_streams() as gateway:  # the default cap: 5 per user
        user_id = uuid.uuid4()
        for _ in range(5):
            gateway.open_stream(mint_token(sub=str(user_id)))
        await notifications.wait_opened(5)

        async with asyncio.timeout(WAIT):
            refused = await asyncio.gather(
                *(gateway.open_stream(mint_token(sub=str(user_id))) for _ in range(95))
            )
        other = {"Authorization": f"Bearer {mint_token()}"}
        listing = await within(1.0, gateway.client.get("/api/v1/notifications", headers=other))
        health = await within(1.0, gateway.client.get("/health"))
        gateway.open_stream(mint_token())  # another user's stream is not held back
        await notifications.wait_opened(6)

        assert {response.status_code for response in refused} == {429}
        problem = refused[0]
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json()["code"] == "too_many_streams"
        assert problem.json()["status"] == 429
        assert problem.json()["instance"] == STREAM
        assert notifications.opened == 6  # no refused stream reached the backend
        assert listing.status_code == 200
        assert health.status_code == 200


async def test_a_stream_that_ends_frees_its_place_for_the_user(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    async with open_gateway_with_streams(stream_limit_per_user=1) as gateway:
        user = str(uuid.uuid4())
        first = gateway.open_stream(mint_token(sub=user))
        await notifications.wait_opened(1)
        assert (await within(WAIT, gateway.open_stream(mint_token(sub=user)))).status_code == 429

        first.cancel()  # the client goes away
        await asyncio.gather(first, return_exceptions=True)
        gateway.open_stream(mint_token(sub=user))
        await notifications.wait_opened(2)

        assert gateway.open_streams == 1


async def test_a_stream_ends_when_its_session_is_revoked(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    user_id, revoked, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with open_gateway_with_streams() as gateway:
        ending = gateway.open_stream(mint_token(sub=str(user_id), sid=str(revoked)))
        staying = gateway.open_stream(mint_token(sub=str(user_id), sid=str(kept)))
        await notifications.wait_opened(2)

        # What the broker consumer hands over for an `auth.session_revoked` event.
        await gateway.app.state.revocations.on_event(
            revocation("auth.session_revoked", user_id, [revoked], reason="logout")
        )
        response = await asyncio.wait_for(ending, WAIT)

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.text.splitlines()[0] == FIRST_EVENT  # finished cleanly
        assert not staying.done()
        assert gateway.open_streams == 1


async def test_every_stream_of_a_deactivated_user_ends(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    user_id = uuid.uuid4()
    async with open_gateway_with_streams() as gateway:
        streams = [gateway.open_stream(mint_token(sub=str(user_id))) for _ in range(2)]
        bystander = gateway.open_stream(mint_token())
        await notifications.wait_opened(3)

        # Whatever sessions the event names, the user's streams end.
        await gateway.app.state.revocations.on_event(revocation("user.deactivated", user_id, []))
        responses = await asyncio.wait_for(asyncio.gather(*streams), WAIT)

        assert [response.status_code for response in responses] == [200, 200]
        assert not bystander.done()


async def test_a_stream_ends_when_its_access_token_expires(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    async with open_gateway_with_streams() as gateway:
        token = mint_token(lifetime_seconds=2)
        expires_at = int(time.time()) + 2
        stream = gateway.open_stream(token)
        await notifications.wait_opened(1)

        response = await asyncio.wait_for(stream, WAIT)
        ended_at = time.time()

        assert response.status_code == 200
        assert response.text.splitlines()[0] == FIRST_EVENT
        assert ended_at >= expires_at - 0.1  # not before the token's exp
        assert gateway.open_streams == 0


async def test_a_stream_ends_after_the_maximum_lifetime(
    open_gateway_with_streams: GatewayOpener, notifications: HoldingNotifications
) -> None:
    async with open_gateway_with_streams(stream_max_lifetime_seconds=0.3) as gateway:
        started = time.monotonic()
        stream = gateway.open_stream(mint_token())  # valid for 10 minutes

        response = await asyncio.wait_for(stream, WAIT)

        assert response.status_code == 200
        assert response.text.splitlines()[0] == FIRST_EVENT
        assert time.monotonic() - started >= 0.29
        assert notifications.opened == 1


def revocation(name: str, user_id: uuid.UUID, session_ids: list[uuid.UUID], **data: Any) -> Any:
    return raw_event(
        name,
        service="auth",
        subject=user_id,
        sequence=1,
        data={
            "user_id": str(user_id),
            "session_ids": [str(sid) for sid in session_ids],
            "forget_after": None,
            **data,
        },
        actor_id=None,
        correlation_id=None,
    )
