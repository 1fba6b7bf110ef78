"""Attachments through the gateway (docs/adr/0041): an upload's body is streamed to the
tickets service under a limit of its own, an attachment's content is streamed back, and
neither is held in the gateway's memory.

The tickets backend here is a real aiohttp server that hashes what it receives chunk by
chunk and serves 20 MiB of content generated chunk by chunk, so the test process (where
tracemalloc measures) holds no file whole either, unless the gateway does. The memory
tests drive the gateway's ASGI app directly, since httpx's ASGI transport collects a
whole answer before handing it over.
"""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asgi_lifespan import LifespanManager
from bugtracker_gateway.main import create_app
from bugtracker_gateway.settings import Settings
from bugtracker_testkit import app_client
from starlette.types import ASGIApp, Message

from gateway.tests.conftest import openapi_documents

MIB = 1024 * 1024
CHUNK = 64 * 1024
CONTENT_SIZE = 20 * MIB
ETAG = '"' + "ab" * 32 + '"'
UPLOAD = "/api/v1/tickets/BUG-1/attachments"
CONTENT = "/api/v1/attachments/0f4f1c3e-6a55-4c1d-9d5a-1b2c3d4e5f60/content"
PRESIGNED = "https://s3.example.test/bucket/ab%2Fcd?X-Amz-Signature=0a%2B1&X-Amz-Expires=300"
WAIT = 10.0
BREAK_AFTER_CHUNKS = 16  # where the broken and the stalling content stop: after 1 MiB
# What the gateway (with the fake backend and the ASGI driver) may allocate at its peak
# while 20 MiB pass through: a buffered body alone would be 20 MiB.
MEMORY_BOUND = 4 * MIB


def _block(index: int) -> bytes:
    """The content's `index`-th 64 KiB block: different for every block, so that a range
    from the wrong offset would not match."""
    return hashlib.sha256(index.to_bytes(4, "big")).digest() * (CHUNK // 32)


def content_chunks(first: int = 0, last: int = CONTENT_SIZE - 1) -> Iterator[bytes]:
    """Bytes `first` to `last` (inclusive) of the content, block by block."""
    position = first
    while position <= last:
        index, offset = divmod(position, CHUNK)
        piece = _block(index)[offset : offset + last - position + 1]
        yield piece
        position += len(piece)


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


CONTENT_SHA256 = sha256_of(content_chunks())


async def upload_chunks(size: int, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """`size` bytes (the content's first ones), `chunk` at a time."""
    sent = 0
    for piece in content_chunks(0, size - 1):
        for start in range(0, len(piece), chunk):
            sent += len(piece[start : start + chunk])
            yield piece[start : start + chunk]
    assert sent == size


@dataclass
class Upload:
    headers: dict[str, str]
    size: int = 0
    sha256: str = ""
    complete: bool = False
    aborted: BaseException | None = None


@dataclass
class AttachmentsBackend:
    """Stands in for the tickets service's attachment endpoints."""

    uploads: list[Upload] = field(default_factory=list)
    content_requests: list[dict[str, str]] = field(default_factory=list)
    other_requests: list[str] = field(default_factory=list)
    upload_ended: asyncio.Event = field(default_factory=asyncio.Event)
    answer_delay: float = 0.0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_post("/api/v1/tickets/{ref}/attachments", self.upload)
        app.router.add_get("/api/v1/attachments/{id}/content", self.content)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app

    async def ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_documents()["tickets"])

    async def other(self, request: web.Request) -> web.Response:
        await request.read()
        self.other_requests.append(request.path)
        await asyncio.sleep(self.answer_delay)
        return web.json_response({"path": request.path})

    async def upload(self, request: web.Request) -> web.Response:
        record = Upload(headers=dict(request.headers))
        self.uploads.append(record)
        digest = hashlib.sha256()
        try:
            async for chunk in request.content.iter_any():
                digest.update(chunk)
                record.size += len(chunk)
        except BaseException as exc:
            record.aborted = exc
            raise
        finally:
            self.upload_ended.set()
        record.sha256 = digest.hexdigest()
        record.complete = True
        await asyncio.sleep(self.answer_delay)
        return web.json_response({"size": record.size, "sha256": record.sha256}, status=201)

    async def content(self, request: web.Request) -> web.StreamResponse:
        self.content_requests.append(dict(request.headers))
        if request.match_info["id"] == "redirect":
            return web.Response(status=302, headers={"Location": PRESIGNED})
        headers = {
            "ETag": ETAG,
            "Accept-Ranges": "bytes",
            "Content-Disposition": "attachment; filename*=UTF-8''big%20file.bin",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=0, must-revalidate",
            "Content-Type": "application/octet-stream",
        }
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers=headers)
        first, last, status = 0, CONTENT_SIZE - 1, 200
        wanted = request.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start, end = wanted.removeprefix("bytes=").split("-")
            first, last, status = int(start), int(end), 206
            headers["Content-Range"] = f"bytes {first}-{last}/{CONTENT_SIZE}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = last - first + 1
        await response.prepare(request)
        if request.method != "HEAD":
            for written, chunk in enumerate(content_chunks(first, last)):
                if written == BREAK_AFTER_CHUNKS and request.match_info["id"] == "broken":
                    assert request.transport is not None
                    request.transport.close()  # dies mid-body
                    return response
                if written == BREAK_AFTER_CHUNKS and request.match_info["id"] == "stalling":
                    await asyncio.sleep(WAIT)
                await response.write(chunk)
        await response.write_eof()
        return response


@pytest.fixture
async def tickets() -> AsyncIterator[AttachmentsBackend]:
    fake = AttachmentsBackend()
    fake.server = TestServer(fake.app())
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


@pytest.fixture
def upload_settings(settings: Settings, tickets: AttachmentsBackend) -> Settings:
    return settings.model_copy(update={"tickets_url": tickets.url})


@asynccontextmanager
async def open_client(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings.model_copy(update=overrides))) as client:
        yield client


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[ASGIApp]:
    """The gateway's ASGI app with its lifespan running, to drive directly."""
    async with LifespanManager(create_app(settings), startup_timeout=30) as manager:
        yield manager.app


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    size: int
    sha256: str
    largest_chunk: int
    finished: bool = False  # the app sent the body's end


async def framed(chunks: AsyncIterator[bytes] | None) -> AsyncIterator[Message]:
    """The request messages of a body: one per chunk, the last without `more_body`."""
    previous: bytes | None = None
    if chunks is not None:
        async for chunk in chunks:
            if previous is not None:
                yield {"type": "http.request", "body": previous, "more_body": True}
            previous = chunk
    yield {"type": "http.request", "body": previous or b"", "more_body": False}


async def exchange(
    app: ASGIApp,
    method: str,
    path: str,
    headers: dict[str, str],
    body: AsyncIterator[bytes] | None = None,
) -> Answer:
    """One request to the app as a server makes it (the body message by message, then
    nothing until the app is done), the answer's body hashed and dropped chunk by chunk."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 123),
        "server": ("testserver", 80),
    }
    messages = framed(body)
    never = asyncio.Event()

    async def receive() -> Message:
        try:
            return await anext(messages)
        except StopAsyncIteration:
            await never.wait()
            raise

    answer = Answer(0, {}, 0, "", 0)
    digest = hashlib.sha256()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            chunk = message.get("body", b"")
            digest.update(chunk)
            answer.size += len(chunk)
            answer.largest_chunk = max(answer.largest_chunk, len(chunk))
            answer.finished = not message.get("more_body", False)

    await app(scope, receive, send)
    answer.sha256 = digest.hexdigest()
    return answer


def multipart_headers(auth_headers: dict[str, str], length: int | None) -> dict[str, str]:
    headers = {**auth_headers, "Content-Type": "multipart/form-data; boundary=x"}
    if length is not None:
        headers["Content-Length"] = str(length)
    return headers


# --- uploads -------------------------------------------------------------------------


async def test_an_upload_over_the_body_limit_reaches_the_backend_intact(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    body = b"".join(content_chunks(0, 5 * MIB - 1))
    async with open_client(upload_settings) as gateway:
        answer = await gateway.post(
            UPLOAD, content=body, headers=multipart_headers(auth_headers, None)
        )

    assert answer.status_code == 201, answer.text
    assert answer.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    (seen,) = tickets.uploads
    assert seen.complete
    # Passed on with its length, the token and the forwarding headers.
    assert seen.headers["Content-Length"] == str(len(body))
    assert seen.headers["Content-Type"] == "multipart/form-data; boundary=x"
    assert seen.headers["Authorization"] == auth_headers["Authorization"]
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert "X-Request-ID" in seen.headers


async def test_a_chunked_upload_streams_through(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    async with open_client(upload_settings) as gateway:
        answer = await gateway.post(
            UPLOAD,
            content=upload_chunks(3 * MIB),
            headers=multipart_headers(auth_headers, None),
        )

    assert answer.status_code == 201, answer.text
    assert answer.json()["sha256"] == sha256_of(content_chunks(0, 3 * MIB - 1))
    (seen,) = tickets.uploads
    assert "Content-Length" not in seen.headers
    assert seen.headers["Transfer-Encoding"] == "chunked"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/tickets/BUG-1/comments"),
        ("POST", "/api/v1/tickets/BUG-1/attachments/extra"),
        ("POST", "/api/v1/tickets/attachments"),
        ("PUT", UPLOAD),
        ("PATCH", "/api/v1/attachments/x"),
    ],
)
async def test_other_requests_keep_the_one_mib_limit(
    upload_settings: Settings,
    tickets: AttachmentsBackend,
    auth_headers: dict[str, str],
    method: str,
    path: str,
) -> None:
    async with open_client(upload_settings) as gateway:
        answer = await gateway.request(
            method, path, content=b"x" * (MIB + 1), headers=multipart_headers(auth_headers, None)
        )

    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    assert tickets.uploads == []
    assert tickets.other_requests == []


async def test_a_declared_length_over_the_upload_limit_is_refused_before_the_backend(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    limit = MIB + 16 * 1024
    async with open_client(upload_settings, attachments_max_bytes=MIB) as gateway:
        refused = await gateway.post(
            UPLOAD, content=b"x" * (limit + 1), headers=multipart_headers(auth_headers, None)
        )
        accepted = await gateway.post(
            UPLOAD, content=b"x" * limit, headers=multipart_headers(auth_headers, None)
        )

    assert refused.status_code == 413
    assert refused.json()["code"] == "payload_too_large"
    assert str(limit) in refused.json()["detail"]
    assert accepted.status_code == 201
    assert [upload.size for upload in tickets.uploads] == [limit]  # only the second


async def test_a_chunked_upload_past_the_limit_is_cut_off_and_the_backend_request_aborted(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    async with open_client(upload_settings, attachments_max_bytes=MIB) as gateway:
        answer = await gateway.post(
            UPLOAD,
            content=upload_chunks(4 * MIB),
            headers=multipart_headers(auth_headers, None),
        )
        async with asyncio.timeout(WAIT):
            await tickets.upload_ended.wait()

    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    (seen,) = tickets.uploads
    assert not seen.complete
    assert seen.aborted is not None
    assert 0 < seen.size <= MIB + 16 * 1024


async def test_an_upload_needs_a_token(
    upload_settings: Settings, tickets: AttachmentsBackend
) -> None:
    async with open_client(upload_settings) as gateway:
        answer = await gateway.post(
            UPLOAD, content=b"x" * (2 * MIB), headers=multipart_headers({}, None)
        )

    assert answer.status_code == 401
    assert tickets.uploads == []


async def test_an_upload_has_the_transfer_timeout_not_the_backend_timeout(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    tickets.answer_delay = 0.6
    async with open_client(
        upload_settings, backend_timeout_seconds=0.3, transfer_timeout_seconds=5.0
    ) as gateway:
        upload = await gateway.post(
            UPLOAD, content=b"x" * 1000, headers=multipart_headers(auth_headers, None)
        )
        other = await gateway.post("/api/v1/tickets/BUG-1/comments", json={}, headers=auth_headers)
    async with open_client(upload_settings, transfer_timeout_seconds=0.3) as gateway:
        late = await gateway.post(
            UPLOAD, content=b"x" * 1000, headers=multipart_headers(auth_headers, None)
        )

    assert upload.status_code == 201
    assert other.status_code == 504
    assert late.status_code == 504


# --- downloads -----------------------------------------------------------------------


async def test_a_download_streams_through_with_its_headers(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    async with open_client(upload_settings) as gateway:
        answer = await gateway.get(CONTENT, headers=auth_headers)

    assert answer.status_code == 200
    assert len(answer.content) == CONTENT_SIZE
    assert hashlib.sha256(answer.content).hexdigest() == CONTENT_SHA256
    headers = answer.headers
    assert headers["content-length"] == str(CONTENT_SIZE)
    assert headers["etag"] == ETAG
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''big%20file.bin"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "sandbox"
    assert headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert headers["content-type"] == "application/octet-stream"
    assert "x-request-id" in headers


async def test_a_range_gets_its_206_and_conditions_reach_the_backend(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    first, last = 100_000, 3 * MIB + 17
    async with open_client(upload_settings) as gateway:
        partial = await gateway.get(
            CONTENT, headers={**auth_headers, "Range": f"bytes={first}-{last}"}
        )
        unchanged = await gateway.get(CONTENT, headers={**auth_headers, "If-None-Match": ETAG})
        head = await gateway.head(CONTENT, headers=auth_headers)

    assert partial.status_code == 206
    assert partial.headers["content-range"] == f"bytes {first}-{last}/{CONTENT_SIZE}"
    assert partial.headers["content-length"] == str(last - first + 1)
    assert partial.content == b"".join(content_chunks(first, last))
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == ETAG
    assert unchanged.content == b""
    assert head.status_code == 200
    assert head.headers["content-length"] == str(CONTENT_SIZE)
    assert head.headers["etag"] == ETAG
    assert head.content == b""
    ranged, conditional, _ = tickets.content_requests
    assert ranged["Range"] == f"bytes={first}-{last}"
    assert conditional["If-None-Match"] == ETAG


async def test_a_redirect_to_the_store_passes_untouched(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    async with open_client(upload_settings) as gateway:
        answer = await gateway.get("/api/v1/attachments/redirect/content", headers=auth_headers)

    assert answer.status_code == 302
    assert answer.headers["location"] == PRESIGNED


@pytest.mark.parametrize("attachment", ["broken", "stalling"])
async def test_a_download_the_backend_breaks_off_is_left_unfinished(
    upload_settings: Settings,
    tickets: AttachmentsBackend,
    auth_headers: dict[str, str],
    attachment: str,
) -> None:
    """The headers are gone by then: the answer is left unfinished, so the server closes
    the connection and the client cannot take the bytes for the whole file."""
    settings = upload_settings.model_copy(update={"backend_timeout_seconds": 0.5})
    async with open_app(settings) as app, asyncio.timeout(WAIT):
        answer = await exchange(
            app, "GET", f"/api/v1/attachments/{attachment}/content", auth_headers
        )

    assert answer.status == 200
    assert answer.headers["content-length"] == str(CONTENT_SIZE)
    assert answer.size == BREAK_AFTER_CHUNKS * CHUNK
    assert not answer.finished


# --- memory --------------------------------------------------------------------------


@asynccontextmanager
async def peak_memory() -> AsyncIterator[list[int]]:
    """The peak of traced allocations above what was held at the start, in bytes."""
    result: list[int] = []
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        yield result
        _, peak = tracemalloc.get_traced_memory()
        result.append(peak - base)
    finally:
        tracemalloc.stop()


async def test_memory_stays_flat_while_20_mib_go_through_either_way(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    size = 20 * MIB
    async with open_app(upload_settings) as app:
        # Warm up: connections, histograms, the token's verification.
        await exchange(app, "GET", CONTENT, {**auth_headers, "Range": "bytes=0-9"})
        await exchange(app, "POST", UPLOAD, multipart_headers(auth_headers, 10), upload_chunks(10))
        async with peak_memory() as download_peak:
            download = await exchange(app, "GET", CONTENT, auth_headers)
        async with peak_memory() as upload_peak:
            upload = await exchange(
                app, "POST", UPLOAD, multipart_headers(auth_headers, size), upload_chunks(size)
            )

    peaks = f"download {download_peak[0] / MIB:.2f} MiB, upload {upload_peak[0] / MIB:.2f} MiB"
    print(f"peak: {peaks}")  # noqa: T201
    assert download_peak[0] < MEMORY_BOUND
    assert upload_peak[0] < MEMORY_BOUND
    assert download.status == 200
    assert download.size == CONTENT_SIZE
    assert download.sha256 == CONTENT_SHA256
    assert download.largest_chunk < MIB  # passed on in pieces
    assert upload.status == 201
    assert tickets.uploads[-1].complete
    assert tickets.uploads[-1].sha256 == sha256_of(content_chunks(0, size - 1))


async def test_memory_stays_flat_while_ten_uploads_run_at_once(
    upload_settings: Settings, tickets: AttachmentsBackend, auth_headers: dict[str, str]
) -> None:
    size = 5 * MIB
    async with open_app(upload_settings) as app:
        await exchange(app, "POST", UPLOAD, multipart_headers(auth_headers, 10), upload_chunks(10))
        async with peak_memory() as peak:
            answers = await asyncio.gather(
                *(
                    exchange(
                        app,
                        "POST",
                        UPLOAD,
                        multipart_headers(auth_headers, size),
                        upload_chunks(size),
                    )
                    for _ in range(10)
                )
            )

    assert [answer.status for answer in answers] == [201] * 10
    assert all(upload.complete and upload.size == size for upload in tickets.uploads[1:])
    print(f"peak: ten uploads at once {peak[0] / MIB:.2f} MiB")  # noqa: T201
    assert peak[0] < 4 * MEMORY_BOUND  # buffered, they would be 50 MiB
