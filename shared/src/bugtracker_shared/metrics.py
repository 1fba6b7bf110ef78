"""Prometheus metrics, and the one ASGI middleware of every request path: request id,
log context, metrics and the access line.

The metrics live in prometheus-client's default registry (one per process, like the
process_* and python_gc_* metrics it adds itself). Gauges that describe a resource (the
DB pool, the outbox backlog, queue depths) are read when Prometheus scrapes, by the
`refresh` callback the `/metrics` route awaits, so nothing polls in the background.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bugtracker_shared.logs import enter_request, get_logger, leave_request
from bugtracker_shared.request_context import REQUEST_ID_HEADER, sane_request_id

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

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_access_log = get_logger("bugtracker.access")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/api/v1/tickets/{ticket_ref}`), never the
    raw path: ids in labels would make a time series per ticket."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """The one middleware of every app's request path (pure ASGI), outermost but for the
    tracing span:

    - the request id: a sane `X-Request-ID` from the client is kept, otherwise one is
      made; every answer carries it, and every log line and event of the request;
    - the log context: no ids of an earlier request, and the project and ticket ids of
      the path (read from the matched route's path parameters when a line is written);
    - the metrics (latency by method, route template and status; requests in flight);
    - one access line per request (method, route template as `path`, status,
      `duration_ms`: until the app handed over the answer's last byte).

    Probes and scrapes (`QUIET_ROUTES`) are neither measured nor logged.
    """

    def __init__(self, app: ASGIApp, *, route_of: Callable[[Scope], str] = route_template) -> None:
        self.app = app
        self._route_of = route_of
        # One labelled histogram per (method, route, status), looked up once.
        self._durations: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                incoming = value.decode("latin-1")
                break
        request_id = sane_request_id(incoming)
        id_header = (_REQUEST_ID, request_id.encode())
        status = 500  # what the client gets if the app fails before it answers
        answered = 0.0  # when the app handed over the answer's last byte

        async def send_observed(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *(header for header in message.get("headers", ()) if header[0] != _REQUEST_ID),
                    id_header,
                ]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()
            await send(message)

        tokens = enter_request(request_id, scope)
        HTTP_REQUESTS_IN_FLIGHT.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_observed)
        finally:
            # Up to the answer's end, not the clean-up after it (dependencies' exits): so a
            # gateway's time always includes its backend's.
            duration = (answered or time.perf_counter()) - start
            HTTP_REQUESTS_IN_FLIGHT.dec()
            route = self._route_of(scope)
            if route not in QUIET_ROUTES:
                method = scope["method"]
                key = (method, route, status)
                histogram = self._durations.get(key)
                if histogram is None:
                    histogram = HTTP_REQUEST_DURATION.labels(method, route, str(status))
                    self._durations[key] = histogram
                histogram.observe(duration)
                _access_log.info(
                    "request",
                    method=method,
                    path=route,
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )
            leave_request(tokens)


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
