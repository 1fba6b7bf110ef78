"""The gateway app: request id, token check, routing to backends, merged docs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from bugtracker_shared import tracing
from bugtracker_shared.logs import configure_logging
from bugtracker_shared.metrics import ObservabilityMiddleware
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.tokens import TokenVerifier
from bugtracker_shared.web import RequestIdMiddleware
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from bugtracker_gateway.auth import AuthenticationMiddleware, jwks_fetcher
from bugtracker_gateway.backends import Backends
from bugtracker_gateway.docs import install_docs
from bugtracker_gateway.health import health_router
from bugtracker_gateway.observability import MetricsServer, gateway_route
from bugtracker_gateway.openapi import OpenApiAggregator, openapi_router
from bugtracker_gateway.proxy import PROXIED_METHODS, proxy_endpoint
from bugtracker_gateway.ratelimit import RateLimiter, RateLimitMiddleware
from bugtracker_gateway.revocations import RevocationFeed, RevokedSessions
from bugtracker_gateway.security import HeaderSizeLimitMiddleware, SecurityHeadersMiddleware
from bugtracker_gateway.settings import Settings

logger = logging.getLogger("bugtracker.gateway")

OPENAPI_PATH = "/openapi.json"
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Link",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("gateway", settings.log_level)
    tracing.configure_tracing("gateway")
    metrics_server = MetricsServer(settings.metrics_host, settings.metrics_port)
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

    aggregator = OpenApiAggregator(
        backends,
        settings.backend_timeout_seconds,
        app_version,
        refresh_seconds=settings.openapi_refresh_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await backends.open()
        metrics_server.start()
        logger.info(
            "routing table: %s; metrics on %s:%s",
            settings.routing_table(),
            metrics_server.host,
            metrics_server.port,
        )
        feed.start()
        # The merged document is built at start, in the background (backends may still
        # be starting; a partial merge is fetched again on the next request).
        prefetch = asyncio.create_task(aggregator.document(), name="openapi-prefetch")
        await feed.wait_ready(settings.revocations_startup_wait_seconds)
        try:
            yield
        finally:
            prefetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prefetch
            await feed.close()
            await backends.close()
            metrics_server.stop()
            tracing.flush()

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
    app.state.metrics_server = metrics_server
    # Added innermost first: rate limit (per user, so after the token check), token
    # check, header size, CORS, security headers, metrics and access log, request id, and
    # the tracing span outermost.
    if settings.rate_limit_enabled:
        app.add_middleware(
            RateLimitMiddleware,
            limiter=RateLimiter(settings.rate_limit, settings.auth_rate_limit),
        )
    app.add_middleware(AuthenticationMiddleware, verifier=verifier, revoked=revoked)
    app.add_middleware(HeaderSizeLimitMiddleware, limit=settings.max_header_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins(),
        allow_methods=PROXIED_METHODS,
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        allow_credentials=False,  # bearer tokens, not cookies
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ObservabilityMiddleware, route_of=gateway_route)
    app.add_middleware(RequestIdMiddleware)  # every answer carries the id
    if tracing.tracing_enabled():
        tracing.instrument_app(app)  # outermost: the server span covers everything
    install_problem_handlers(app)
    app.include_router(health_router(backends, settings.health_timeout_seconds, feed))
    app.include_router(openapi_router(aggregator))
    install_docs(app, OPENAPI_PATH)
    # Last, so the gateway's own routes above take precedence.
    app.add_route("/{path:path}", proxy_endpoint(backends, settings), methods=PROXIED_METHODS)
    return app
