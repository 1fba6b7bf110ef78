"""Real little backends on free ports, and the gateway in front of them, in-process.

Each fake backend records what reached it and echoes it back; the fake auth backend
also serves the JWKS of a test Ed25519 key that `mint` signs access tokens with.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bugtracker_gateway.main import create_app
from bugtracker_gateway.settings import Settings
from bugtracker_testkit import app_client
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "bugtracker-auth"
AUDIENCE = "bugtracker"
KEY_ID = "test-key-1"
SIGNING_KEY = Ed25519PrivateKey.generate()
SERVICES = ("auth", "projects", "tickets", "notifications", "webhooks")
BOOKKEEPING_PATHS = frozenset(
    {
        "/.well-known/jwks.json",
        "/health/ready",
        "/openapi.json",
        "/internal/revoked-sessions",
        "/internal/tokens/exchange",
        "/internal/tokens/used",
    }
)
INTERNAL_TOKEN = "gateway-test-internal-token"

Minter = Callable[..., str]
GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def jwks() -> dict[str, Any]:
    public = OKPAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "EdDSA"}]}


def mint_token(
    *,
    key: Ed25519PrivateKey = SIGNING_KEY,
    lifetime_seconds: int = 600,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed access token; a claim or header given as None is left out."""
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime_seconds,
        "role": "member",
        **claims,
    }
    head = {"kid": KEY_ID, "typ": "at+jwt", **(headers or {})}
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None},
        key,
        algorithm="EdDSA",
        headers={k: v for k, v in head.items() if v is not None},
    )


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Seen:
    method: str
    path_qs: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class FakeBackend:
    """An aiohttp app standing in for one service."""

    name: str
    openapi: dict[str, Any]
    seen: list[Seen] = field(default_factory=list)
    ready: bool = True
    openapi_available: bool = True
    openapi_fetches: int = 0
    jwks_fetches: int = 0
    readiness_checks: int = 0
    revoked_sessions: list[dict[str, Any]] = field(default_factory=list)
    internal_token_seen: list[str | None] = field(default_factory=list)
    # Personal access tokens auth knows (secret -> claims of the tokens it mints for
    # them: `sub`, `sid`, `scope`, and `lifetime_seconds`), the exchanges it answered, the
    # usage reports it got; `exchange_gate` holds every exchange until it is set.
    personal_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    exchanges: int = 0
    uses_reported: list[dict[str, Any]] = field(default_factory=list)
    exchange_gate: asyncio.Event = field(default_factory=asyncio.Event)
    exchange_started: asyncio.Event = field(default_factory=asyncio.Event)
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/health/ready", self.health)
        app.router.add_get("/openapi.json", self.openapi_document)
        if self.name == "auth":
            app.router.add_get("/.well-known/jwks.json", self.keys)
            app.router.add_get("/internal/revoked-sessions", self.revoked)
            app.router.add_post("/internal/tokens/exchange", self.exchange)
            app.router.add_post("/internal/tokens/used", self.used)
            self.exchange_gate.set()
        app.router.add_route("*", "/{tail:.*}", self.echo)
        return app

    async def health(self, request: web.Request) -> web.Response:
        self.readiness_checks += 1
        return web.json_response({"status": "ok"}, status=200 if self.ready else 503)

    async def openapi_document(self, request: web.Request) -> web.Response:
        self.openapi_fetches += 1
        if not self.openapi_available:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response(self.openapi)

    async def keys(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(jwks())

    async def revoked(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Internal-Token")
        self.internal_token_seen.append(token)
        if token != INTERNAL_TOKEN:
            return web.json_response({"status": 404}, status=404)
        return web.json_response({"items": self.revoked_sessions})

    async def exchange(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Internal-Token") != INTERNAL_TOKEN:
            return web.json_response({"status": 404}, status=404)
        assert request.content_type == "application/json"  # as auth insists
        self.exchanges += 1
        self.exchange_started.set()
        await self.exchange_gate.wait()
        claims = self.personal_tokens.get((await request.json())["token"])
        if claims is None:
            return web.json_response({"status": 401, "code": "invalid_token"}, status=401)
        lifetime = claims.get("lifetime_seconds", 600)
        minted = {k: v for k, v in claims.items() if k != "lifetime_seconds"}
        return web.json_response(
            {
                "access_token": mint_token(lifetime_seconds=lifetime, **minted),
                "expires_in": lifetime,
                "token_id": claims["sid"],
                "user_id": claims["sub"],
                "scopes": claims["scope"].split(),
                "expires_at": "2030-01-01T00:00:00+00:00",
            }
        )

    async def used(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Internal-Token") != INTERNAL_TOKEN:
            return web.json_response({"status": 404}, status=404)
        self.uses_reported.append(await request.json())
        return web.Response(status=204)

    async def echo(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, list(request.headers.items()), body))
        if request.path.endswith("/slow"):
            await self.release_slow.wait()
        if request.path.endswith("/hangup") and request.transport is not None:
            request.transport.close()  # dies mid-exchange, before any answer
            raise web.HTTPInternalServerError
        if request.path.endswith("/stream"):
            return await self.event_stream(request)
        if request.path.endswith("/redirect"):
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        response = web.json_response(
            {
                "service": self.name,
                "method": request.method,
                "path_qs": request.path_qs,
                "body": body.decode("utf-8", "replace"),
            },
            headers={"X-Backend": self.name, "Proxy-Agent": "fake", "Keep-Alive": "timeout=5"},
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number in (1, 2):
            await response.write(f'data: {{"n": {number}}}\n\n'.encode())
        await response.write_eof()
        return response

    def proxied(self) -> list[Seen]:
        """What reached the backend through the proxy (not the gateway's own calls)."""
        return [seen for seen in self.seen if seen.path_qs not in BOOKKEEPING_PATHS]


def _operation(operation_id: str, schema: str | None = None) -> dict[str, Any]:
    content = (
        {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
        if schema
        else {}
    )
    return {
        "operationId": operation_id,
        "responses": {"200": {"description": "OK", "content": content}},
    }


VALIDATION_SCHEMAS: dict[str, Any] = {
    "HTTPValidationError": {
        "type": "object",
        "properties": {
            "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
        },
    },
    "ValidationError": {"type": "object", "properties": {"msg": {"type": "string"}}},
}


def openapi_documents() -> dict[str, dict[str, Any]]:
    """Small documents shaped like FastAPI's, with a name clash between projects and
    tickets (`Page`) and shared identical schemas (`HTTPValidationError`)."""

    def document(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": "service", "version": "0.1.0"},
            "paths": {
                **paths,
                "/health/live": {"get": _operation("live")},
                "/health/ready": {"get": _operation("ready")},
            },
            "components": {"schemas": {**schemas, **VALIDATION_SCHEMAS}},
        }

    return {
        "auth": document(
            {
                "/api/v1/auth/token": {"post": _operation("token", "TokenResponse")},
                "/api/v1/users/me": {"get": _operation("me", "UserResponse")},
                "/.well-known/jwks.json": {"get": _operation("jwks")},
            },
            {
                "TokenResponse": {"type": "object", "properties": {"access_token": {}}},
                "UserResponse": {"type": "object", "properties": {"id": {}}},
            },
        ),
        "projects": document(
            {
                "/api/v1/projects": {"get": _operation("list_items", "Page")},
                # Routed to tickets by the gateway, so not reachable here:
                "/api/v1/projects/{project_id}/tickets": {"get": _operation("shadowed")},
            },
            {
                "Page": {"type": "object", "properties": {"project_ids": {}}},
            },
        ),
        "tickets": document(
            {
                "/api/v1/projects/{project_ref}/tickets": {
                    "get": _operation("list_project_tickets", "Page")
                },
                "/api/v1/tickets/{ticket_id}": {"get": _operation("get_ticket")},
            },
            {
                "Page": {"type": "object", "properties": {"ticket_ids": {}}},
            },
        ),
        "notifications": document({"/api/v1/notifications": {"get": _operation("list_items")}}, {}),
        "webhooks": document(
            {
                "/api/v1/projects/{project_ref}/webhooks": {
                    "get": _operation("list_project_webhooks")
                },
                "/api/v1/webhooks/{webhook_id}": {"get": _operation("get_webhook")},
            },
            {},
        ),
    }


@pytest.fixture(autouse=True)
def prompt_metrics_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus-client serves /metrics with socketserver's `serve_forever`, which notices
    a shutdown only at its next poll, every 0.5 s: each gateway a test stopped waited that
    long (about a minute of the unit tests). Here it polls every 10 ms."""
    serve_forever = socketserver.BaseServer.serve_forever

    def polling_often(self: socketserver.BaseServer, poll_interval: float = 0.5) -> None:
        serve_forever(self, poll_interval=0.01)

    monkeypatch.setattr(socketserver.BaseServer, "serve_forever", polling_often)


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, FakeBackend]]:
    documents = openapi_documents()
    fakes = {name: FakeBackend(name, documents[name]) for name in SERVICES}
    try:
        for fake in fakes.values():
            fake.server = TestServer(fake.app())
            await fake.server.start_server()
        yield fakes
    finally:
        for fake in fakes.values():
            fake.release_slow.set()
            if fake.server is not None:
                await fake.server.close()


@pytest.fixture
def settings(backends: dict[str, FakeBackend]) -> Settings:
    return Settings(
        auth_url=backends["auth"].url,
        projects_url=backends["projects"].url,
        tickets_url=backends["tickets"].url,
        notifications_url=backends["notifications"].url,
        webhooks_url=backends["webhooks"].url,
        issuer=ISSUER,
        audience=AUDIENCE,
        # No broker in these tests: revocations come from the seed (or are fed directly).
        amqp_url="",
        internal_token=INTERNAL_TOKEN,
        revocations_startup_wait_seconds=5.0,
        metrics_port=0,  # any free port: tests run beside `make up` and each other
    )


@pytest.fixture
def open_gateway(settings: Settings) -> GatewayFactory:
    """A gateway on the fake backends, with some settings changed."""

    @asynccontextmanager
    async def open_(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with app_client(create_app(settings.model_copy(update=overrides))) as client:
            yield client

    return open_


@pytest.fixture
async def gateway(open_gateway: GatewayFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with open_gateway() as client:
        yield client


@pytest.fixture
def token() -> str:
    return mint_token()


@pytest.fixture
def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def mint() -> Minter:
    """Signs an access token; keyword arguments override claims (or `key`, `lifetime_seconds`)."""
    return mint_token


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"
