"""The gateway's own metrics: per-backend latency and errors, route templates for proxied
paths (a bounded set: the API's paths), and the internal port `/metrics` is served on
(never the public one)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from bugtracker_shared.metrics import LATENCY_BUCKETS, UNMATCHED_ROUTE, route_template
from prometheus_client import Counter, Histogram, start_http_server
from starlette.types import Scope

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

_MAX_SEGMENTS = 8
ID = "{id}"


class _Node:
    __slots__ = ("label", "literals", "param")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.label: str | None = None


class RouteTemplates:
    """The API's path templates, from the backends' OpenAPI documents (the aggregator
    hands them over each time it merges), to name a proxied path for metrics and the
    access line: `/api/v1/tickets/DEMO-12/comments` -> `/api/v1/tickets/{id}/comments`.

    The labels are these templates with every parameter written `{id}`, so there are as
    many as the API has paths: a path that matches none (a typo, a scanner, a path the
    backends do not know yet) is `<unmatched>`, also when the gateway answered it itself
    (401, 429, 413). Before the first document is in, every proxied path is
    `<unmatched>`. A literal segment wins over a parameter (`/users/me`, not `/users/{id}`).
    """

    def __init__(self, templates: Iterable[str] = ()) -> None:
        self._root = _Node()
        self.replace(templates)

    def replace(self, templates: Iterable[str]) -> None:
        root = _Node()
        for template in templates:
            segments = template.strip("/").split("/")
            if not template.startswith("/") or len(segments) > _MAX_SEGMENTS:
                continue
            node = root
            for segment in segments:
                if segment.startswith("{") and segment.endswith("}"):
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literals.setdefault(segment, _Node())
            node.label = "/" + "/".join(
                ID if s.startswith("{") and s.endswith("}") else s for s in segments
            )
        self._root = root  # swapped whole: a request never sees half a table

    def label(self, path: str) -> str:
        if not path.startswith("/"):
            return UNMATCHED_ROUTE
        segments = path[1:].split("/")
        if len(segments) > _MAX_SEGMENTS:
            return UNMATCHED_ROUTE
        return _match(self._root, segments, 0) or UNMATCHED_ROUTE


def _match(node: _Node, segments: list[str], index: int) -> str | None:
    if index == len(segments):
        return node.label
    segment = segments[index]
    literal = node.literals.get(segment)
    if literal is not None:
        found = _match(literal, segments, index + 1)
        if found is not None:
            return found
    if node.param is not None and segment not in ("", ".", ".."):
        return _match(node.param, segments, index + 1)
    return None


def proxied_route(path: str, templates: RouteTemplates) -> str:
    """`/api/v1/tickets/DEMO-1/comments` -> `/api/v1/tickets/{id}/comments`, or
    `<unmatched>` for a path that is no template of the API."""
    return templates.label(path)


def gateway_route(templates: RouteTemplates) -> Callable[[Scope], str]:
    """The route label of a request: the gateway's own route (the FastAPI router put it
    in the scope), or else the template of the proxied path (the proxy never goes
    through a router)."""

    def route_of(scope: Scope) -> str:
        route = route_template(scope)
        if route != UNMATCHED_ROUTE:
            return route
        return templates.label(scope["path"])

    return route_of


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
