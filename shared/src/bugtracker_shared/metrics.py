"""Prometheus metrics and the access log, measured by one ASGI middleware.

The metrics live in prometheus-client's default registry (one per process, like the
process_* and python_gc_* metrics it adds itself). Gauges that describe a resource (the
DB pool, the outbox backlog, queue depths) are read when Prometheus scrapes, by the
`refresh` callback the `/metrics` route awaits, so nothing polls in the background.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import clear_contextvars

from bugtracker_shared.logs import get_logger

LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_DURATION = Histogram(
    "bugtracker_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "bugtracker_http_requests_in_flight", "HTTP requests being answered right now."
)
DB_POOL_CONNECTIONS = Gauge(
    "bugtracker_db_pool_connections",
    "Database connections of the pool, by state (in_use, idle, overflow).",
    ["state"],
)
DB_POOL_SIZE = Gauge("bugtracker_db_pool_size", "Configured size of the database pool.")
OUTBOX_BACKLOG = Gauge("bugtracker_outbox_backlog", "Outbox rows not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "bugtracker_outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none).",
)
EVENTS_PUBLISHED = Counter(
    "bugtracker_events_published_total", "Events confirmed by the broker.", ["type"]
)
EVENTS_UNROUTABLE = Counter(
    "bugtracker_events_unroutable_total",
    "Events the broker confirmed but could route to no queue.",
    ["type"],
)
EVENTS_CONSUMED = Counter(
    "bugtracker_events_consumed_total",
    "Deliveries handled by a consumer, by outcome (handled, failed, rejected).",
    ["queue", "type", "outcome"],
)
EVENTS_DEAD_LETTERED = Counter(
    "bugtracker_events_dead_lettered_total",
    "Messages this consumer sent to its dead-letter queue (unparsable, or over the "
    "delivery limit).",
    ["queue"],
)
CONSUMER_LAG = Histogram(
    "bugtracker_consumer_lag_seconds",
    "Time from an event's creation to the start of its handling.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_QUEUE_MESSAGES = Gauge(
    "bugtracker_consumer_queue_messages",
    "Messages ready in a consumer's queue, read at scrape time.",
    ["queue"],
)

# Not measured or logged: probes and scrapes would drown out the traffic.
QUIET_ROUTES = frozenset({"/metrics", "/health", "/health/live", "/health/ready"})
UNMATCHED_ROUTE = "<unmatched>"

_access_log = get_logger("bugtracker.access")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/api/v1/tickets/{ticket_ref}`), never the
    raw path: ids in labels would make a time series per ticket."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Counts, times and logs every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, *, route_of: Callable[[Scope], str] = route_template) -> None:
        self.app = app
        self._route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clear_contextvars()  # ids bound by an earlier request on this task are not ours
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        HTTP_REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            HTTP_REQUESTS_IN_FLIGHT.dec()
            route = self._route_of(scope)
            if route not in QUIET_ROUTES:
                duration = time.perf_counter() - start
                method = scope["method"]
                HTTP_REQUEST_DURATION.labels(method, route, str(status)).observe(duration)
                _access_log.info(
                    "request",
                    method=method,
                    path=route,
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )
            clear_contextvars()


def observe_pool(engine: AsyncEngine) -> None:
    """Set the pool gauges from SQLAlchemy's QueuePool (read at scrape time)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    if not callable(size):  # NullPool and friends keep no connections to report
        return
    in_use = pool.checkedout()  # type: ignore[attr-defined]
    DB_POOL_SIZE.set(size())
    DB_POOL_CONNECTIONS.labels("in_use").set(in_use)
    DB_POOL_CONNECTIONS.labels("idle").set(pool.checkedin())  # type: ignore[attr-defined]
    DB_POOL_CONNECTIONS.labels("overflow").set(max(pool.overflow(), 0))  # type: ignore[attr-defined]


def generate_latest() -> bytes:
    return _generate_latest(REGISTRY)


def metrics_router(refresh: Callable[[Request], Awaitable[None]]) -> APIRouter:
    """`GET /metrics` in Prometheus' text format, after `refresh` has read the gauges."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await refresh(request)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
