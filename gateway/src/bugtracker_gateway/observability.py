"""The gateway's own metrics: per-backend latency and errors, route templates for proxied
paths, and the internal port `/metrics` is served on (never the public one)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from bugtracker_shared.metrics import LATENCY_BUCKETS, UNMATCHED_ROUTE, route_template
from prometheus_client import Counter, Histogram, start_http_server
from starlette.types import Scope

from bugtracker_gateway.routing import backend_for

BACKEND_REQUEST_DURATION = Histogram(
    "bugtracker_gateway_backend_request_duration_seconds",
    "Time a backend took to answer a proxied request, by backend and status.",
    ["backend", "status"],
    buckets=LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "bugtracker_gateway_backend_errors_total",
    "Proxied requests a backend did not answer, by reason (unavailable, timeout, bad_response).",
    ["backend", "reason"],
)

CATCH_ALL = "/{path:path}"
# A path segment that is a word of the API (`tickets`, `unread-count`, `me`) is kept; any
# other (a UUID, a project or ticket key, a number) is an id and becomes `{id}`.
_API_WORD = re.compile(r"^(?:v\d+|\.?[a-z][a-z-]*(?:\.[a-z]+)?)$")
_MAX_SEGMENTS = 8


def proxied_route(path: str) -> str:
    """`/api/v1/tickets/DEMO-1/comments` -> `/api/v1/tickets/{id}/comments`."""
    if backend_for(path) is None:
        return UNMATCHED_ROUTE
    segments = path.strip("/").split("/")
    if len(segments) > _MAX_SEGMENTS:
        return UNMATCHED_ROUTE
    return "/" + "/".join(s if _API_WORD.match(s) else "{id}" for s in segments)


def gateway_route(scope: Scope) -> str:
    """The gateway's own route, or the id-free form of a proxied path (the catch-all
    proxy route is a plain Starlette route, which FastAPI does not put in the scope)."""
    route = route_template(scope)
    if route in (UNMATCHED_ROUTE, CATCH_ALL):
        return proxied_route(scope["path"])
    return route


@dataclass
class MetricsServer:
    """prometheus-client's HTTP server on the internal metrics address, in a thread."""

    host: str
    port: int
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(self.port, addr=self.host)
        self.port = self._server.server_port  # the real one when 0 asked for any

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
