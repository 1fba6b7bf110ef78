"""Forward a request to its backend and its answer back to the client.

Bodies are buffered up to the size limit (cheaper than streaming small bodies through
Starlette); only event streams are streamed back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from http import HTTPStatus
from urllib.parse import quote

import aiohttp
from bugtracker_shared.problems import ProblemError
from bugtracker_shared.request_context import current_request_id
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bugtracker_gateway.backends import Backends
from bugtracker_gateway.observability import BACKEND_ERRORS, BACKEND_REQUEST_DURATION
from bugtracker_gateway.routing import Backend, backend_for
from bugtracker_gateway.settings import Settings

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
_REPLACED_ON_RESPONSE = frozenset({b"content-length", b"date", b"server"})
_NO_BODY_STATUSES = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})
EVENT_STREAM = "text/event-stream"
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


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


def request_headers(request: Request) -> list[tuple[str, str]]:
    """End-to-end headers of the client's request plus the gateway's forwarding headers."""
    raw = request.headers.raw
    listed = _connection_tokens(raw)
    forwarded = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if not _is_hop_by_hop(name, listed)
        and name not in _REPLACED_ON_REQUEST
        # A client must not pass itself off as someone through headers a backend may trust.
        and not name.startswith(b"x-user-")
    ]
    client_ip = request.client.host if request.client else None
    previous_hops = ", ".join(request.headers.getlist("x-forwarded-for"))
    if client_ip:
        chain = f"{previous_hops}, {client_ip}" if previous_hops else client_ip
        forwarded.append(("X-Forwarded-For", chain))
    forwarded.append(("X-Forwarded-Proto", request.url.scheme))
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


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _payload_too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _payload_too_large(limit)
    return bytes(body)


def _payload_too_large(limit: int) -> ProblemError:
    return ProblemError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw.split(b"?", 1)[0].decode("latin-1")
    return quote(str(request.scope["path"]))


def _buffered(upstream: aiohttp.ClientResponse, body: bytes, method: str) -> Response:
    response = Response(content=body, status_code=upstream.status)
    headers = response_headers(upstream.raw_headers)
    if method == "HEAD" and upstream.content_length is not None:
        headers.append((b"content-length", str(upstream.content_length).encode()))
    elif upstream.status >= HTTPStatus.OK and upstream.status not in _NO_BODY_STATUSES:
        headers.append((b"content-length", str(len(body)).encode()))
    response.raw_headers = headers
    return response


def _streamed(upstream: aiohttp.ClientResponse) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
            finished = True
        finally:
            if finished:
                upstream.release()
            else:  # the client went away mid-stream: drop the backend connection
                upstream.close()

    response = StreamingResponse(chunks(), status_code=upstream.status)
    response.raw_headers = response_headers(upstream.raw_headers)
    return response


def _unavailable(backend: Backend) -> ProblemError:
    return ProblemError(
        503,
        "service_unavailable",
        f"The {backend} service is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


async def forward(
    request: Request, backend: Backend, backends: Backends, settings: Settings
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    query_string = request.scope.get("query_string", b"").decode("latin-1")
    raw_path = _raw_path(request)
    headers = request_headers(request)
    session = backends.session(backend)
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
                        request.method,
                        backends.url(backend, raw_path, query_string, base=base),
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
                deadline.reschedule(None)  # a stream lasts as long as the client listens
                _observe(backend, upstream.status, started)
                return _streamed(upstream)
            try:
                content = await upstream.read()  # releases the connection when done
            except BaseException:
                upstream.close()
                raise
            _observe(backend, upstream.status, started)
            return _buffered(upstream, content, request.method)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        logger.warning("%s unreachable: %s", backend, exc)
        BACKEND_ERRORS.labels(backend, "unavailable").inc()
        raise _unavailable(backend) from exc
    except TimeoutError as exc:
        BACKEND_ERRORS.labels(backend, "timeout").inc()
        # No Retry-After: the backend is slow, not down, and the request may have had
        # its effect; whether to repeat it is the client's call.
        logger.warning("%s did not answer within %ss", backend, settings.backend_timeout_seconds)
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


def _observe(backend: Backend, status: int, started: float) -> None:
    BACKEND_REQUEST_DURATION.labels(backend, str(status)).observe(time.perf_counter() - started)


def proxy_endpoint(
    backends: Backends, settings: Settings
) -> Callable[[Request], Awaitable[Response]]:
    async def proxy(request: Request) -> Response:
        backend = backend_for(request.scope["path"])
        if backend is None:
            raise ProblemError(404, "not_found", "No resource is served at this path.")
        return await forward(request, backend, backends, settings)

    return proxy
