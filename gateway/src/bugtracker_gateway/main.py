"""The gateway app: request id, token check, routing to backends, merged docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from bugtracker_shared.logs import configure_logging
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.tokens import TokenVerifier
from bugtracker_shared.web import RequestIdMiddleware
from fastapi import FastAPI

from bugtracker_gateway.auth import AuthenticationMiddleware, jwks_fetcher
from bugtracker_gateway.backends import Backends
from bugtracker_gateway.docs import install_docs
from bugtracker_gateway.health import health_router
from bugtracker_gateway.openapi import OpenApiAggregator, openapi_router
from bugtracker_gateway.proxy import PROXIED_METHODS, proxy_endpoint
from bugtracker_gateway.revocations import RevocationFeed, RevokedSessions
from bugtracker_gateway.settings import Settings

OPENAPI_PATH = "/openapi.json"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("gateway", settings.log_level)
    app_version = version("bugtracker-gateway")
    backends = Backends(settings)
    verifier = TokenVerifier(
        jwks_fetcher(backends, settings.backend_timeout_seconds),
        issuer=settings.issuer,
        audience=settings.audience,
    )
    revoked = RevokedSessions(default_ttl_seconds=settings.access_token_ttl_seconds + 5)
    feed = RevocationFeed(
        revoked,
        backends,
        amqp_url=settings.amqp_url,
        queue=settings.revocation_queue,
        internal_token=settings.internal_token,
        timeout_seconds=settings.backend_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await backends.open()
        feed.start()
        await feed.wait_ready(settings.revocations_startup_wait_seconds)
        try:
            yield
        finally:
            await feed.close()
            await backends.close()

    # FastAPI's own document would describe the gateway, not the API: it is switched off
    # and /openapi.json serves the backends' merged documents instead.
    app = FastAPI(
        title="Bugtracker gateway",
        version=app_version,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.revocations = feed
    app.add_middleware(AuthenticationMiddleware, verifier=verifier, revoked=revoked)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the id
    install_problem_handlers(app)
    app.include_router(health_router(backends, settings.health_timeout_seconds, feed))
    aggregator = OpenApiAggregator(backends, settings.backend_timeout_seconds, app_version)
    app.include_router(openapi_router(aggregator))
    install_docs(app, OPENAPI_PATH)
    # Last, so the gateway's own routes above take precedence.
    app.add_route("/{path:path}", proxy_endpoint(backends, settings), methods=PROXIED_METHODS)
    return app
