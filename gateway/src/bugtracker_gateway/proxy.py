"""Forward a request to its backend and its answer back to the client.

Request bodies are read whole up to `max_body_bytes` (cheaper than streaming small
bodies; more is 413), but for an attachment upload (`POST /api/v1/tickets/{ref}/
attachments`, docs/adr/0041): its body is passed on to the tickets service as it arrives,
chunk by chunk, so that no process holds a file in memory. It has a limit of its own
(`upload_limit_bytes`: the largest attachment plus the multipart overhead): 413 at once
when its Content-Length declares more, and where a body of unknown length passes it, the
backend request is aborted and the client gets 413. An upload runs under
`transfer_timeout_seconds` instead of `backend_timeout_seconds`, since a large file on a
slow link takes minutes.

Answers are buffered when small and of known length. Larger ones (over
`BUFFERED_ANSWER_MAX_BYTES`), those of unknown length and every 200 or 206 of an
attachment's content are streamed to the client chunk by chunk as they come, with their
headers (Content-Length included), in constant memory: the backend must go on sending
within `backend_timeout_seconds` of each pause, and the whole body within
`transfer_timeout_seconds`; a body that breaks off is cut off at the client too (the
connection is closed, so a truncated download never looks complete). Event streams are
streamed too, on connections of their own and under the limits of
`bugtracker_gateway.streams`. The gateway sends every path that is not its own straight
here (bugtracker_gateway.main), without Starlette's router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import aiohttp
from bugtracker_shared.problems import ProblemError, client_left, problem_response
from bugtracker_shared.request_context import current_request_id
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from bugtracker_gateway.backends import Backends
from bugtracker_gateway.observability import BACKEND_ERRORS, BACKEND_REQUEST_DURATION
from bugtracker_gateway.routing import (
    Backend,
    backend_for,
    is_attachment_content,
    is_attachment_upload,
)
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
# An answer with a larger body, or of unknown length, is streamed, not buffered.
BUFFERED_ANSWER_MAX_BYTES = 256 * 1024
_STREAMED_CONTENT_STATUSES = frozenset({HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT})


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


class RequestBodyStream:
    """A request body passed on as it arrives (an attachment upload's), cut off past
    `limit`; what became of it tells the proxy why a backend exchange broke off."""

    def __init__(self, scope: Scope, receive: Receive, limit: int) -> None:
        self.declared = _declared_length(scope)
        if self.declared is not None and self.declared > limit:
            raise _payload_too_large(limit)
        self.limit = limit
        self._receive = receive
        self.received = 0
        self.finished = False  # the client sent it all (and no more than `limit`)
        self.too_large = False
        self.client_left = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as the server hands them over; raises past the limit and
        when the client leaves, which aborts the backend request sending them."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_left = True
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self.limit:
                self.too_large = True
                raise _payload_too_large(self.limit)
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.finished = True
                return


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


def _streams_answer(method: str, path: str, upstream: aiohttp.ClientResponse) -> bool:
    """Whether an answer's body is streamed to the client rather than buffered."""
    status = upstream.status
    if method == "HEAD" or status < HTTPStatus.OK or status in _NO_BODY_STATUSES:
        return False  # no body to speak of
    if status in _STREAMED_CONTENT_STATUSES and is_attachment_content(path):
        return True
    length = upstream.content_length
    return length is None or length > BUFFERED_ANSWER_MAX_BYTES


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
        except ClientDisconnect:  # the client left mid-upload: nothing to answer
            await client_left(scope["method"], scope["path"])(scope, receive, send)

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
        body: bytes | RequestBodyStream
        if is_attachment_upload(method, scope["path"]):
            body = RequestBodyStream(scope, receive, self.settings.upload_limit_bytes)
        else:
            body = await read_body(scope, receive, self.settings.max_body_bytes)
        # A stream is counted (and maybe refused) before it takes a connection, from the
        # streams' own pool.
        streams = self.streams
        stream = streams.open(scope) if is_stream_request(method, scope["path"]) else None
        try:
            upstream, content = await self._exchange(
                scope, method, backend, body, for_stream=stream is not None
            )
            if content is None and upstream.content_type != EVENT_STREAM:
                await self._relay_body(upstream, backend, send)
                return
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

    async def _relay_body(
        self, upstream: aiohttp.ClientResponse, backend: Backend, send: Send
    ) -> None:
        """Pass a (large) answer on chunk by chunk: never more than a chunk or two of it in
        memory. When the backend breaks off or stalls, the answer is left unfinished, so
        the server closes the connection and the client sees it cut short."""
        settings = self.settings
        headers = response_headers(upstream.raw_headers)
        if upstream.content_length is not None:
            headers.append((b"content-length", str(upstream.content_length).encode()))
        completed = False
        try:
            await send(
                {"type": "http.response.start", "status": upstream.status, "headers": headers}
            )
            async with asyncio.timeout(settings.transfer_timeout_seconds):
                while True:
                    async with asyncio.timeout(settings.backend_timeout_seconds):
                        chunk = await upstream.content.readany()
                    if not chunk:
                        break
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            completed = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "bad_response"
            BACKEND_ERRORS.labels(backend, kind).inc()
            logger.warning("%s broke off an answer being streamed: %r", backend, exc)
            return
        except OSError:  # sending failed: the client has gone
            logger.debug("the client left during a streamed answer")
            return
        finally:
            if completed:
                upstream.release()
            else:  # cut short: drop the backend connection
                upstream.close()
        with contextlib.suppress(OSError):  # the client left meanwhile
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _exchange(
        self,
        scope: Scope,
        method: str,
        backend: Backend,
        body: bytes | RequestBodyStream,
        *,
        for_stream: bool = False,
    ) -> tuple[aiohttp.ClientResponse, bytes | None]:
        """The backend's answer and its body (None for an event stream or an answer to
        stream, still open). `for_stream`: on a connection of the streams' pool. `body`
        as a RequestBodyStream is sent as it arrives, under the transfer timeout."""
        settings = self.settings
        backends = self.backends
        url_path = _raw_path(scope)
        query_string = scope.get("query_string", b"").decode("latin-1")
        headers = request_headers(scope)
        upload, data = _outgoing(body, headers)
        timeout = (
            settings.backend_timeout_seconds
            if upload is None
            else settings.transfer_timeout_seconds
        )
        session = backends.stream_session if for_stream else backends.session(backend)
        replicas = backends.replicas[backend]
        tried: set[str] = set()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout) as deadline:
                while True:
                    base = replicas.next()
                    tried.add(base)
                    try:
                        upstream = await session.request(
                            method,
                            backends.url(backend, url_path, query_string, base=base),
                            headers=headers,
                            data=data,
                            allow_redirects=False,
                        )
                    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                        # Nothing reached this replica: another one may take the request.
                        replicas.mark_down(base)
                        if all(url in tried or replicas.is_down(url) for url in replicas.urls):
                            raise
                        continue
                    break
                if upstream.content_type == EVENT_STREAM or (
                    upload is None and _streams_answer(method, scope["path"], upstream)
                ):
                    # Its end is the relay's business: for an event stream the token's
                    # expiry, the streams' lifetime, a revocation (_relay_stream,
                    # bugtracker_gateway.streams); else deadlines of its own (_relay_body).
                    deadline.reschedule(None)
                    _observe(backend, upstream.status, started)
                    return upstream, None
                try:
                    content = await upstream.read()  # releases the connection when done
                except BaseException:
                    upstream.close()
                    raise
                if upload is not None and not upload.finished:
                    # The backend answered before the whole upload came: stop sending it.
                    upstream.close()
                _observe(backend, upstream.status, started)
                return upstream, content
        except aiohttp.ClientError as exc:
            raise _failed(backend, exc, upload) from exc
        except TimeoutError as exc:
            BACKEND_ERRORS.labels(backend, "timeout").inc()
            # No Retry-After: the backend is slow, not down, and the request may have had
            # its effect; whether to repeat it is the client's call.
            logger.warning("%s did not answer within %ss", backend, timeout)
            raise ProblemError(
                504,
                "gateway_timeout",
                f"The {backend} service did not answer in time.",
            ) from exc


def _outgoing(
    body: bytes | RequestBodyStream, headers: list[tuple[str, str]]
) -> tuple[RequestBodyStream | None, bytes | AsyncIterator[bytes] | None]:
    """The upload (when `body` streams) and the data to send; an upload's Content-Length,
    checked against its limit (the server holds the client to it), is passed on."""
    if not isinstance(body, RequestBodyStream):
        return None, body or None
    if body.declared is not None:
        headers.append(("Content-Length", str(body.declared)))
    return body, body.chunks()


def _failed(
    backend: Backend, exc: aiohttp.ClientError, upload: RequestBodyStream | None
) -> Exception:
    """What to answer when an exchange broke off: an upload cut off at its limit or by
    its client's leaving aborts the backend request, which is not the backend's fault."""
    if upload is not None and upload.too_large:
        return _payload_too_large(upload.limit)
    if upload is not None and upload.client_left:
        return ClientDisconnect()
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        logger.warning("%s unreachable: %s", backend, exc)
        BACKEND_ERRORS.labels(backend, "unavailable").inc()
        return _unavailable(backend)
    logger.warning("%s failed mid-exchange: %s", backend, exc)
    BACKEND_ERRORS.labels(backend, "bad_response").inc()
    return ProblemError(502, "bad_gateway", f"The {backend} service gave no valid answer.")


_durations: dict[tuple[Backend, int], Any] = {}  # labelled histograms, looked up once


def _observe(backend: Backend, status: int, started: float) -> None:
    histogram = _durations.get((backend, status))
    if histogram is None:
        histogram = _durations[backend, status] = BACKEND_REQUEST_DURATION.labels(
            backend, str(status)
        )
    histogram.observe(time.perf_counter() - started)
