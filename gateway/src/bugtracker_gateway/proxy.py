"""Forward a request to its backend and its answer back to the client.

Bodies are buffered up to the size limit (cheaper than streaming small bodies); only
event streams are streamed back, on connections of their own and under the limits of
`bugtracker_gateway.streams`. The gateway sends every path that is not its own
straight here (bugtracker_gateway.main), without Starlette's router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import aiohttp
from bugtracker_shared.problems import ProblemError, problem_response
from bugtracker_shared.request_context import current_request_id
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from bugtracker_gateway.backends import Backends
from bugtracker_gateway.observability import BACKEND_ERRORS, BACKEND_REQUEST_DURATION
from bugtracker_gateway.routing import Backend, backend_for
from bugtracker_gateway.settings import Settings
from bugtracker_gateway.streams import OpenStream, Streams, is_stream_request

logger = logging.getLogger("bugtracker.gateway.proxy")

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
# Set by the gateway itself (forwarding headers) or by the HTTP client (framing).
_REPLACED_ON_REQUEST = frozenset(
    {b"content-length", b"expect", b"x-request-id", b"x-forwarded-for", b"x-forwarded-proto"}
)
# Never passed on from a client (docs/adr/0027): the secret of service callers, and
# forwarding headers the gateway does not vouch for (all `X-Forwarded-*` are dropped
# but the two it sets itself).
_DROPPED_ON_REQUEST = frozenset({b"x-internal-token", b"forwarded", b"x-real-ip"})
_REPLACED_ON_RESPONSE = frozenset({b"content-length", b"date", b"server"})
_NO_BODY_STATUSES = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})
EVENT_STREAM = "text/event-stream"
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PROXIED = frozenset({*PROXIED_METHODS, "HEAD"})  # HEAD with GET, as Starlette's routes
_ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in `Connection`, which are hop-by-hop too (RFC 9110 7.6.1)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }


def _is_hop_by_hop(name: bytes, listed: set[bytes]) -> bool:
    return name in HOP_BY_HOP or name.startswith(b"proxy-") or name in listed


def request_headers(scope: Scope) -> list[tuple[str, str]]:
    """End-to-end headers of the client's request plus the gateway's forwarding headers,
    in one pass over the raw header list of the scope (no header objects).

    `X-Forwarded-For` is the one client address the gateway determined, and
    `X-Forwarded-Proto` the scheme it trusts (bugtracker_gateway.forwarding): whatever
    the client sent in their place is not passed on."""
    raw: RawHeaders = scope["headers"]
    listed = _connection_tokens(raw)
    forwarded: list[tuple[str, str]] = []
    for name, value in raw:
        if (
            not _is_hop_by_hop(name, listed)
            and name not in _REPLACED_ON_REQUEST
            and name not in _DROPPED_ON_REQUEST
            # A client must not pass itself off as someone through headers a backend may
            # trust.
            and not name.startswith((b"x-user-", b"x-forwarded-"))
        ):
            forwarded.append((name.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    if client:
        forwarded.append(("X-Forwarded-For", str(client[0])))
    forwarded.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    request_id = current_request_id()
    if request_id:
        forwarded.append(("X-Request-ID", request_id))
    return forwarded


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    raw = [(name.lower(), value) for name, value in raw]
    listed = _connection_tokens(raw)
    return [
        (name, value)
        for name, value in raw
        if not _is_hop_by_hop(name, listed) and name not in _REPLACED_ON_RESPONSE
    ]


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to exceed `limit`."""
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise _payload_too_large(limit)
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ClientDisconnect
    body = first.get("body", b"")
    if not first.get("more_body", False):  # the usual case: one message
        if len(body) > limit:
            raise _payload_too_large(limit)
        return bytes(body)
    buffer = bytearray(body)
    while True:
        if len(buffer) > limit:
            raise _payload_too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        buffer += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if len(buffer) > limit:
        raise _payload_too_large(limit)
    return bytes(buffer)


def _payload_too_large(limit: int) -> ProblemError:
    return ProblemError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.split(b"?", 1)[0].decode("latin-1")
    return quote(str(scope["path"]))


def _buffered_headers(upstream: aiohttp.ClientResponse, body: bytes, method: str) -> RawHeaders:
    headers = response_headers(upstream.raw_headers)
    if method == "HEAD" and upstream.content_length is not None:
        headers.append((b"content-length", str(upstream.content_length).encode()))
    elif upstream.status >= HTTPStatus.OK and upstream.status not in _NO_BODY_STATUSES:
        headers.append((b"content-length", str(len(body)).encode()))
    return headers


class _ClientGoneError(Exception):
    """Sending to the client failed: it has gone."""


async def _relay_stream(
    upstream: aiohttp.ClientResponse,
    remaining_seconds: float,
    stream: OpenStream,
    receive: Receive,
    send: Send,
) -> None:
    """Pass an event stream on until the first of: the backend ends it, the client leaves,
    `stream` is ended (revocation), `remaining_seconds` pass (token expiry, lifetime).
    Unless the client has left, the response is then finished cleanly (the client
    reconnects); the backend connection is released when its stream ended, else closed."""
    await send(
        {
            "type": "http.response.start",
            "status": upstream.status,
            "headers": response_headers(upstream.raw_headers),
        }
    )

    async def pump() -> None:
        async for chunk in upstream.content.iter_any():
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError as exc:
                raise _ClientGoneError from exc

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relay = asyncio.create_task(pump())
    left = asyncio.create_task(client_gone())
    ended = asyncio.create_task(stream.ended.wait())
    tasks = (relay, left, ended)
    upstream_finished = client_left = False
    try:
        await asyncio.wait(tasks, timeout=remaining_seconds, return_when=asyncio.FIRST_COMPLETED)
        if relay.done() and not relay.cancelled():
            error = relay.exception()
            upstream_finished = error is None
            client_left = isinstance(error, _ClientGoneError)
            if error is not None and not client_left:
                logger.warning("an event stream broke off: %r", error)
        client_left = client_left or left.done()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if upstream_finished:
            upstream.release()
        else:  # the stream is cut short: drop the backend connection
            upstream.close()
    if not client_left:
        reason = "upstream_end" if upstream_finished else stream.reason or "deadline"
        logger.debug("ending an event stream: %s", reason)
        with contextlib.suppress(OSError):  # the client left meanwhile
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _unavailable(backend: Backend) -> ProblemError:
    return ProblemError(
        503,
        "service_unavailable",
        f"The {backend} service is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


class Proxy:
    """The catch-all: a pure ASGI app that forwards a request to its backend and sends
    the answer back (no Starlette router, request or response object on the way for a
    buffered answer). Errors are problem+json like every other answer."""

    def __init__(
        self, backends: Backends, settings: Settings, streams: Streams | None = None
    ) -> None:
        self.backends = backends
        self.settings = settings
        self.streams = (
            streams
            if streams is not None
            else Streams(
                per_user_limit=settings.stream_limit_per_user,
                total_limit=settings.stream_connection_limit,
                max_lifetime_seconds=settings.stream_max_lifetime_seconds,
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.forward(scope, receive, send)
        except ProblemError as problem:
            response = problem_response(
                problem.status,
                problem.code,
                problem.detail,
                instance=scope["path"],
                title=problem.title,
                headers=problem.headers,
                extra=problem.extra,
            )
            await response(scope, receive, send)

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        if method not in _PROXIED:
            raise ProblemError(
                405,
                "method_not_allowed",
                "Method Not Allowed",
                headers={"Allow": _ALLOW},
            )
        backend = backend_for(scope["path"])
        if backend is None:
            raise ProblemError(404, "not_found", "No resource is served at this path.")
        body = await read_body(scope, receive, self.settings.max_body_bytes)
        # A stream is counted (and maybe refused) before it takes a connection, from the
        # streams' own pool.
        streams = self.streams
        stream = streams.open(scope) if is_stream_request(method, scope["path"]) else None
        try:
            upstream, content = await self._exchange(
                scope, method, backend, body, for_stream=stream is not None
            )
            if content is None:  # an event stream
                if stream is None:  # one nobody announced: under the same rules
                    try:
                        stream = streams.open(scope)
                    except ProblemError:
                        upstream.close()
                        raise
                remaining = streams.remaining_seconds(stream)
                await _relay_stream(upstream, remaining, stream, receive, send)
                return
        finally:
            if stream is not None:
                streams.close(stream)
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status,
                "headers": _buffered_headers(upstream, content, method),
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _exchange(
        self, scope: Scope, method: str, backend: Backend, body: bytes, *, for_stream: bool = False
    ) -> tuple[aiohttp.ClientResponse, bytes | None]:
        """The backend's answer and its body (None for an event stream, still open).
        `for_stream`: on a connection of the streams' pool."""
        settings = self.settings
        backends = self.backends
        url_path = _raw_path(scope)
        query_string = scope.get("query_string", b"").decode("latin-1")
        headers = request_headers(scope)
        session = backends.stream_session if for_stream else backends.session(backend)
        replicas = backends.replicas[backend]
        tried: set[str] = set()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(settings.backend_timeout_seconds) as deadline:
                while True:
                    base = replicas.next()
                    tried.add(base)
                    try:
                        upstream = await session.request(
                            method,
                            backends.url(backend, url_path, query_string, base=base),
                            headers=headers,
                            data=body or None,
                            allow_redirects=False,
                        )
                    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                        # Nothing reached this replica: another one may take the request.
                        replicas.mark_down(base)
                        if all(url in tried or replicas.is_down(url) for url in replicas.urls):
                            raise
                        continue
                    break
                if upstream.content_type == EVENT_STREAM:
                    # Its end is the relay's business: the token's expiry, the streams'
                    # lifetime, a revocation (_relay_stream, bugtracker_gateway.streams).
                    deadline.reschedule(None)
                    _observe(backend, upstream.status, started)
                    return upstream, None
                try:
                    content = await upstream.read()  # releases the connection when done
                except BaseException:
                    upstream.close()
                    raise
                _observe(backend, upstream.status, started)
                return upstream, content
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            logger.warning("%s unreachable: %s", backend, exc)
            BACKEND_ERRORS.labels(backend, "unavailable").inc()
            raise _unavailable(backend) from exc
        except TimeoutError as exc:
            BACKEND_ERRORS.labels(backend, "timeout").inc()
            # No Retry-After: the backend is slow, not down, and the request may have had
            # its effect; whether to repeat it is the client's call.
            logger.warning(
                "%s did not answer within %ss", backend, settings.backend_timeout_seconds
            )
            raise ProblemError(
                504,
                "gateway_timeout",
                f"The {backend} service did not answer in time.",
            ) from exc
        except aiohttp.ClientError as exc:
            logger.warning("%s failed mid-exchange: %s", backend, exc)
            BACKEND_ERRORS.labels(backend, "bad_response").inc()
            raise ProblemError(
                502, "bad_gateway", f"The {backend} service gave no valid answer."
            ) from exc


_durations: dict[tuple[Backend, int], Any] = {}  # labelled histograms, looked up once


def _observe(backend: Backend, status: int, started: float) -> None:
    histogram = _durations.get((backend, status))
    if histogram is None:
        histogram = _durations[backend, status] = BACKEND_REQUEST_DURATION.labels(
            backend, str(status)
        )
    histogram.observe(time.perf_counter() - started)
