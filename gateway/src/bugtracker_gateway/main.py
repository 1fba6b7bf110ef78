"""The gateway app: request id, token check, routing to backends, merged docs.

The request path is pure ASGI middleware (outermost first): the tracing span when
tracing is on; the client address and scheme (trusted proxies only, docs/adr/0027);
request id, metrics and the access line (one middleware); security headers; CORS; the
header size limit; the token check; the rate limit; then
`OwnRoutesFirst`: the gateway's own few paths go to its FastAPI router, every other path
straight to the proxy, without a router in between.
"""

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
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from bugtracker_gateway.auth import DOCS_ASSETS_PREFIX, AuthenticationMiddleware, jwks_fetcher
from bugtracker_gateway.backends import Backends
from bugtracker_gateway.docs import OAUTH2_REDIRECT_PATH, install_docs
from bugtracker_gateway.forwarding import ClientAddressMiddleware
from bugtracker_gateway.health import health_router
from bugtracker_gateway.observability import MetricsServer, RouteTemplates, gateway_route
from bugtracker_gateway.openapi import OpenApiAggregator, openapi_router
from bugtracker_gateway.personal_tokens import PersonalTokens
from bugtracker_gateway.proxy import PROXIED_METHODS, Proxy
from bugtracker_gateway.ratelimit import Limits, RateLimiter, RateLimitMiddleware
from bugtracker_gateway.revocations import (
    RevocationFeed,
    RevokedSessions,
    own_revocation_queue,
)
from bugtracker_gateway.security import HeaderSizeLimitMiddleware, SecurityHeadersMiddleware
from bugtracker_gateway.settings import Settings
from bugtracker_gateway.streams import Streams

logger = logging.getLogger("bugtracker.gateway")

OPENAPI_PATH = "/openapi.json"
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Range",  # an attachment's content in parts (docs/adr/0041)
]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Link",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    # An attachment's content (docs/adr/0041).
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
]
# The gateway's own routes (GET), besides the docs assets; /metrics is on the metrics port.
OWN_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        OPENAPI_PATH,
        "/docs",
        OAUTH2_REDIRECT_PATH,
        "/redoc",
    }
)


class OwnRoutesFirst:
    """The innermost middleware: a GET of one of the gateway's own paths, or any request
    for a docs asset, goes on to its FastAPI router; any other request straight to the
    proxy, which answers 404 for a path no backend serves and 405 for a method it does
    not forward (what the catch-all route behind the router answered before)."""

    def __init__(self, app: ASGIApp, proxy: ASGIApp) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if (scope["method"] == "GET" and path in OWN_PATHS) or path.startswith(DOCS_ASSETS_PREFIX):
            await self.app(scope, receive, send)
            return
        await self.proxy(scope, receive, send)


def rate_limits(settings: Settings) -> Limits:
    """The limits (`enabled` False when switched off): shared through the store when one
    is set."""
    local = RateLimiter(
        settings.rate_limit,
        settings.auth_rate_limit,
        auth_failures=settings.auth_failure_rate_limit,
    )
    return Limits(
        local,
        settings.redis_url,
        timeout_seconds=settings.redis_timeout_seconds,
        retry_seconds=settings.redis_retry_seconds,
        enabled=settings.rate_limit_enabled,
    )


def personal_token_exchange(
    settings: Settings, backends: Backends, verifier: TokenVerifier
) -> PersonalTokens:
    """Personal access tokens (docs/adr/0042): exchanged at auth, cached, uses reported."""
    return PersonalTokens(
        backends,
        verifier,
        internal_token=settings.internal_token,
        timeout_seconds=settings.backend_timeout_seconds,
        cache_size=settings.personal_token_cache_size,
        refresh_margin_seconds=settings.personal_token_refresh_margin_seconds,
        flush_seconds=settings.personal_token_flush_seconds,
    )


def _add_token_check_and_rate_limit(
    app: FastAPI,
    verifier: TokenVerifier,
    revoked: RevokedSessions,
    limits: Limits,
    personal_tokens: PersonalTokens | None = None,
) -> None:
    """The rate limit (per user, so after the token check), then the token check, which
    shares the limiter for its per-IP budget of 401 answers."""
    limiter = limits if limits.enabled else None
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(
        AuthenticationMiddleware,
        verifier=verifier,
        revoked=revoked,
        limiter=limiter,
        personal_tokens=personal_tokens,
    )


def create_app(settings: Settings | None = None) -> FastAPI:  # noqa: PLR0915 (the wiring)
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
        queue=settings.revocation_queue or own_revocation_queue(),
        internal_token=settings.internal_token,
        timeout_seconds=settings.backend_timeout_seconds,
        queue_expires_seconds=settings.revocation_queue_expires_seconds,
    )
    # The event streams relayed (docs/adr/0026); a revocation ends those of its sessions.
    streams = Streams(
        per_user_limit=settings.stream_limit_per_user,
        total_limit=settings.stream_connection_limit,
        max_lifetime_seconds=settings.stream_max_lifetime_seconds,
    )
    revoked.subscribe(streams.revoked)
    # Personal access tokens (docs/adr/0042): evicted when their id is revoked.
    personal_tokens = personal_token_exchange(settings, backends, verifier)
    revoked.subscribe(personal_tokens.revoked)

    limits = rate_limits(settings)
    templates = RouteTemplates()  # the route labels of proxied paths, from the documents
    aggregator = OpenApiAggregator(
        backends,
        settings.backend_timeout_seconds,
        app_version,
        refresh_seconds=settings.openapi_refresh_seconds,
        templates=templates,
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
        personal_tokens.start()
        # The merged document is built at start, in the background, until every backend's
        # document is in (backends may still be starting): its paths are the route labels.
        prefetch = asyncio.create_task(aggregator.keep_warm(), name="openapi-prefetch")
        wait = settings.revocations_startup_wait_seconds
        # The rate limit store is pinged once, so that /health and the log tell at once.
        await asyncio.gather(feed.wait_ready(wait), aggregator.wait_merged(wait), limits.open())
        try:
            yield
        finally:
            prefetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prefetch
            await asyncio.gather(feed.close(), limits.close(), personal_tokens.close())
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
        telemetry=tracing.FASTAPI_TELEMETRY_OFF,
    )
    app.state.revocations = feed
    app.state.streams = streams
    app.state.personal_tokens = personal_tokens
    app.state.metrics_server = metrics_server
    # Added innermost first: own routes or the proxy, rate limit (per user, so after the
    # token check), token check, header size, CORS, security headers, then request id,
    # metrics and access log in one, the client address, and the tracing span outermost.
    app.add_middleware(OwnRoutesFirst, proxy=Proxy(backends, settings, streams))
    _add_token_check_and_rate_limit(app, verifier, revoked, limits, personal_tokens)
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
    app.add_middleware(ObservabilityMiddleware, route_of=gateway_route(templates))
    # The client address and scheme (docs/adr/0027), before anything uses them.
    app.add_middleware(ClientAddressMiddleware, trusted=settings.trusted_proxy_networks())
    if tracing.tracing_enabled():
        tracing.instrument_app(app)  # outermost: the server span covers everything
    install_problem_handlers(app)
    app.include_router(
        health_router(
            backends,
            settings.health_timeout_seconds,
            feed,
            refresh_seconds=settings.health_refresh_seconds,
            rate_limits=lambda: limits.state,
        )
    )
    app.include_router(openapi_router(aggregator))
    install_docs(app, OPENAPI_PATH)
    return app
