"""Attachments on tickets (docs/adr/0041) through the tickets service's HTTP app on
PostgreSQL, with the bytes in a directory of the test's own: upload (streamed, sniffed,
bounded by the size limit and the project's quota), list, metadata, download (ETag,
ranges, the headers that keep a browser from running an upload), deletion, who may do
what, the events, and what a crash between the bytes and the row leaves behind (the
sweep removes it after its grace period). The background sweep and the other jobs are
kept idle; the tests that need a sweep run it themselves with an explicit `now`."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.tokens import Principal
from bugtracker_testkit import (
    TokenMinter,
    app_client,
    assert_write_is_atomic,
    fault_at_commit,
    fault_on,
    injected_fault,
    routing_key_is,
)
from bugtracker_tickets.application.attachments import AttachmentUseCases
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.application.milestones import MilestoneUseCases
from bugtracker_tickets.main import create_app
from bugtracker_tickets.settings import AttachmentSettings, Settings
from fastapi import FastAPI

from services.tickets.tests.conftest import PROJECTS_URL, FakeProjects, TicketsApi

pytestmark = pytest.mark.integration

OWNER, MAINTAINER, DEV, DEV2, REPORTER, VIEWER, STRANGER = (uuid.uuid4() for _ in range(7))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    DEV2: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}
SHA256_HEX = 64


def png_bytes() -> bytes:
    """A valid 2x2 RGB PNG, built here (signature, IHDR, IDAT, IEND with their CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = png_bytes()
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
TEXT = b"Steps to reproduce: log in, log out.\n"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class Scene:
    api: TicketsApi
    app: FastAPI
    db: asyncpg.Connection
    root: Path

    @property
    def cases(self) -> AttachmentUseCases:
        cases: AttachmentUseCases = self.app.state.attachment_cases
        return cases

    def project(self, key: str) -> Any:
        return self.api.projects.add(key, ROLES)

    def principal(self, user: uuid.UUID) -> Principal:
        return Principal(
            user_id=user, session_id=uuid.uuid4(), role="member", token=self.api.tokens.mint(user)
        )

    async def call(self, user: uuid.UUID, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.api.headers(user) | kwargs.pop("headers", {})
        return await self.api.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    async def ticket(self, project: str, user: uuid.UUID = DEV) -> dict[str, Any]:
        created = await self.api.create(user, project)
        assert created.status_code == 201, created.text
        ticket: dict[str, Any] = created.json()
        return ticket

    async def upload(
        self,
        ref: str,
        filename: str,
        content: bytes,
        user: uuid.UUID = DEV,
        part_type: str = "application/octet-stream",
    ) -> httpx.Response:
        return await self.call(
            user,
            "POST",
            f"/tickets/{ref}/attachments",
            files={"file": (filename, content, part_type)},
        )

    async def uploaded(
        self, ref: str, filename: str, content: bytes, user: uuid.UUID = DEV
    ) -> dict[str, Any]:
        response = await self.upload(ref, filename, content, user)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def listed(self, ref: str, user: uuid.UUID = VIEWER, query: str = "") -> list[str]:
        response = await self.call(user, "GET", f"/tickets/{ref}/attachments?limit=100{query}")
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    async def content(
        self,
        attachment_id: str,
        *,
        user: uuid.UUID = VIEWER,
        byte_range: str | None = None,
        if_none_match: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if byte_range is not None:
            headers["Range"] = byte_range
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        return await self.call(
            user, "GET", f"/attachments/{attachment_id}/content", headers=headers
        )

    def blobs(self) -> set[str]:
        """The names of the stored blobs (not the temporary files)."""
        tmp = self.root / "tmp"
        if not self.root.exists():
            return set()
        return {
            path.name for path in self.root.rglob("*") if path.is_file() and tmp not in path.parents
        }

    def tmp_files(self) -> list[Path]:
        tmp = self.root / "tmp"
        return sorted(tmp.iterdir()) if tmp.exists() else []

    def blob_path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def rows(self) -> list[asyncpg.Record]:
        return list(
            await self.db.fetch(
                "SELECT id, ticket_id, filename, size, sha256 FROM tickets.attachments"
                " ORDER BY created_at, id"
            )
        )

    async def attachment_events(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.db.fetch(
            "SELECT routing_key, payload FROM tickets.outbox"
            " WHERE routing_key LIKE 'ticket.attachment_%' ORDER BY position"
        )
        return [(row["routing_key"], json.loads(row["payload"])) for row in rows]

    def after_grace(self) -> datetime:
        """A `now` for the sweep at which everything stored so far is past its grace."""
        return datetime.now(UTC) + self.cases.sweep_grace + timedelta(seconds=1)


SceneFactory = Callable[..., AbstractAsyncContextManager[Scene]]


@pytest.fixture
def open_scene(
    infra: Stack,
    superuser_db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> SceneFactory:
    """The tickets app with its attachments in `tmp_path/blobs`; keyword arguments are
    the attachment settings. Its background jobs (the sweep among them) are idle."""

    async def idle(self: object, **_: float) -> None:
        return None

    monkeypatch.setattr(ConfigurationUseCases, "keep_purging", idle)
    monkeypatch.setattr(MilestoneUseCases, "keep_clearing", idle)
    monkeypatch.setattr(AttachmentUseCases, "keep_sweeping", idle)

    @asynccontextmanager
    async def open_(**attachment_settings: Any) -> AsyncIterator[Scene]:
        migrated(infra, "tickets")
        await truncate_schema(infra, "tickets")
        root = tmp_path / "blobs"
        tokens = TokenMinter()
        projects = FakeProjects()
        settings = Settings(
            database_url=infra.database_url("tickets"),
            amqp_url=infra.rabbitmq.url,
            projects_url=PROJECTS_URL,
            attachments=AttachmentSettings(dir=root, **attachment_settings),
        )
        app = create_app(
            settings,
            projects_transport=httpx.MockTransport(projects.router.handler),
            jwks_fetcher=tokens.fetch_jwks,
        )
        async with app_client(app) as client:
            yield Scene(TicketsApi(client, tokens, projects), app, superuser_db, root)

    return open_


@pytest.fixture
async def scene(open_scene: SceneFactory) -> AsyncIterator[Scene]:
    async with open_scene() as opened:
        yield opened


def errors_at(response: httpx.Response) -> list[list[Any]]:
    return [error["loc"] for error in response.json().get("errors", [])]


# -- 1. upload, list, read, download ------------------------------------------------------


@dataclass(frozen=True)
class Uploaded:
    ticket: dict[str, Any]
    png: dict[str, Any]
    html: dict[str, Any]
    text: dict[str, Any]


async def upload_three(scene: Scene) -> Uploaded:
    """A PNG named and declared as text, an HTML page and a text file, on one ticket."""
    scene.project("ATT")
    ticket = await scene.ticket("ATT")
    ref = ticket["key"]
    before = datetime.now(UTC)

    # A PNG named like text and declared as text: its type comes from its bytes.
    response = await scene.upload(ref, "notes.txt", PNG, part_type="text/plain")
    assert response.status_code == 201, response.text
    png: dict[str, Any] = response.json()
    assert set(png) == {
        "id",
        "ticket_id",
        "filename",
        "content_type",
        "size",
        "sha256",
        "uploader_id",
        "created_at",
    }
    assert png["ticket_id"] == ticket["id"]
    assert png["filename"] == "notes.txt"
    assert png["content_type"] == "image/png"
    assert png["size"] == len(PNG)
    assert png["sha256"] == sha(PNG)
    assert png["uploader_id"] == str(DEV)
    created_at = datetime.fromisoformat(png["created_at"])
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert response.headers["location"] == f"/api/v1/attachments/{png['id']}"
    assert scene.blobs() == {sha(PNG)}
    assert scene.blob_path(sha(PNG)).read_bytes() == PNG

    # Declared as an image, sniffed as the page it is.
    response = await scene.upload(ref, "report page.html", HTML, part_type="image/png")
    assert response.status_code == 201, response.text
    html: dict[str, Any] = response.json()
    assert html["content_type"] == "text/html"
    text = await scene.uploaded(ticket["id"], "café.txt", TEXT)
    assert text["content_type"] == "text/plain"
    return Uploaded(ticket, png, html, text)


async def test_an_upload_is_sniffed_and_listed_oldest_first(scene: Scene) -> None:
    files = await upload_three(scene)
    ref = files.ticket["key"]
    ids = [files.png["id"], files.html["id"], files.text["id"]]
    assert await scene.listed(ref) == ids
    assert await scene.listed(files.ticket["id"]) == ids
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(ids)):
        query = "limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = await scene.call(VIEWER, "GET", f"/tickets/{ref}/attachments?{query}")
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) == 1
        seen.append(items[0]["id"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert cursor is None
    assert (await scene.listed(ref))[:1] == [files.png["id"]]

    metadata = await scene.call(VIEWER, "GET", f"/attachments/{files.png['id']}")
    assert metadata.status_code == 200, metadata.text
    assert metadata.json() == files.png


async def test_a_download_is_the_bytes_with_safe_headers(scene: Scene) -> None:
    files = await upload_three(scene)
    whole = await scene.content(files.png["id"])
    assert whole.status_code == 200, whole.text
    assert whole.content == PNG
    assert whole.headers["content-type"] == "image/png"
    assert whole.headers["etag"] == f'"{sha(PNG)}"'
    assert whole.headers["content-length"] == str(len(PNG))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert whole.headers["content-security-policy"] == "sandbox"
    assert whole.headers["content-disposition"] == "inline; filename*=UTF-8''notes.txt"

    # What a browser could run or render as a page is downloaded, never shown inline.
    page = await scene.content(files.html["id"])
    assert page.status_code == 200
    assert page.content == HTML
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''report%20page.html"
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"] == "sandbox"
    text = await scene.content(files.text["id"])
    assert text.content == TEXT
    assert text.headers["content-length"] == str(len(TEXT))
    assert text.headers["content-disposition"] == "attachment; filename*=UTF-8''caf%C3%A9.txt"

    # Revalidation.
    etag = f'"{sha(PNG)}"'
    not_modified = await scene.content(files.png["id"], if_none_match=etag)
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    listed = await scene.content(files.png["id"], if_none_match=f'"{sha(HTML)}", {etag}')
    assert listed.status_code == 304
    weak = await scene.content(files.png["id"], if_none_match=f"W/{etag}")
    assert weak.status_code == 304
    any_version = await scene.content(files.png["id"], if_none_match="*")
    assert any_version.status_code == 304
    changed = await scene.content(files.png["id"], if_none_match=f'"{sha(HTML)}"')
    assert changed.status_code == 200
    assert changed.content == PNG


async def test_a_download_serves_one_range(scene: Scene) -> None:
    files = await upload_three(scene)
    png_id, size = files.png["id"], len(PNG)
    first = await scene.content(png_id, byte_range="bytes=0-9")
    assert first.status_code == 206, first.text
    assert first.content == PNG[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{size}"
    assert first.headers["content-length"] == "10"
    assert first.headers["etag"] == f'"{sha(PNG)}"'
    assert first.headers["content-type"] == "image/png"
    suffix = await scene.content(png_id, byte_range="bytes=-5")
    assert suffix.status_code == 206
    assert suffix.content == PNG[-5:]
    assert suffix.headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert suffix.headers["content-length"] == "5"
    open_ended = await scene.content(png_id, byte_range="bytes=10-")
    assert open_ended.status_code == 206
    assert open_ended.content == PNG[10:]
    assert open_ended.headers["content-range"] == f"bytes 10-{size - 1}/{size}"
    assert open_ended.headers["content-length"] == str(size - 10)
    past_the_end = await scene.content(png_id, byte_range=f"bytes=5-{size + 100}")
    assert past_the_end.status_code == 206
    assert past_the_end.content == PNG[5:]
    assert past_the_end.headers["content-range"] == f"bytes 5-{size - 1}/{size}"
    longer_suffix = await scene.content(png_id, byte_range=f"bytes=-{size + 100}")
    assert longer_suffix.status_code == 206
    assert longer_suffix.content == PNG
    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        refused = await scene.content(png_id, byte_range=unsatisfiable)
        assert refused.status_code == 416, (unsatisfiable, refused.status_code)
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert PNG[:8] not in refused.content
    # Several ranges, or units this server does not know: the whole file.
    for ignored in ("bytes=0-1,4-5", "items=0-1"):
        whole = await scene.content(png_id, byte_range=ignored)
        assert whole.status_code == 200, ignored
        assert whole.content == PNG


# -- 2. filenames ---------------------------------------------------------------------------


async def test_filenames_are_sanitized(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    cases = {
        "../../etc/passwd": "passwd",
        "..\\..\\windows\\win.ini": "win.ini",
        # DEL, NEL, a right-to-left override and a zero-width space: control and format
        # characters (httpx sends them as they are).
        "in\x7fvoice\u0085.\u202etxt\u200b.pdf": "invoice.txt.pdf",
        "  spaced.txt  ": "spaced.txt",
        "../..": "file",
    }
    for sent, kept in cases.items():
        uploaded = await scene.uploaded(ref, sent, TEXT)
        assert uploaded["filename"] == kept, sent
        download = await scene.content(uploaded["id"])
        assert download.headers["content-disposition"] == (
            f"attachment; filename*=UTF-8''{quote(kept, safe='')}"
        )

    # C0 control characters as raw bytes of the part's header (httpx would escape them).
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a\x01b\x1fc\td.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + TEXT
        + f"\r\n--{boundary}--\r\n".encode()
    )
    raw = await scene.call(
        DEV,
        "POST",
        f"/tickets/{ref}/attachments",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert raw.status_code == 201, raw.text
    assert raw.json()["filename"] == "abcd.txt"


# -- 3. size and quota ------------------------------------------------------------------------


async def test_an_upload_over_the_size_limit_leaves_nothing(open_scene: SceneFactory) -> None:
    async with open_scene(max_bytes=1000) as scene:
        scene.project("ATT")
        ref = (await scene.ticket("ATT"))["key"]
        too_large = await scene.upload(ref, "big.bin", b"\x00\x01" * 500 + b"\x02")
        assert too_large.status_code == 413, too_large.text
        assert too_large.json()["code"] == "payload_too_large"
        assert too_large.json()["max_bytes"] == 1000
        assert await scene.rows() == []
        assert scene.blobs() == set()
        assert scene.tmp_files() == []
        assert await scene.attachment_events() == []

        # A body that declares more than the limit and a part's headers can take is
        # refused before it is read.
        declared = await scene.upload(ref, "huge.bin", b"\x05" * 40_000)
        assert declared.status_code == 413, declared.text
        assert declared.json()["code"] == "payload_too_large"
        assert await scene.rows() == []
        assert scene.blobs() == set()
        assert scene.tmp_files() == []

        # Exactly the limit is fine.
        at_limit = await scene.uploaded(ref, "edge.bin", b"\x00\x01" * 500)
        assert at_limit["size"] == 1000
        assert scene.blobs() == {at_limit["sha256"]}


async def test_the_quota_counts_the_project_s_attachments(open_scene: SceneFactory) -> None:
    async with open_scene(max_bytes=1000, quota_bytes=1500) as scene:
        scene.project("ATT")
        scene.project("OTH")
        ref = (await scene.ticket("ATT"))["key"]
        other_ref = (await scene.ticket("OTH"))["key"]
        first_bytes, second_bytes = b"\x01" * 1000, b"\x02" * 1000
        first = await scene.uploaded(ref, "one.bin", first_bytes)
        over = await scene.upload(ref, "two.bin", second_bytes)
        assert over.status_code == 413, over.text
        assert over.json()["code"] == "quota_exceeded"
        assert over.json()["quota_bytes"] == 1500
        assert over.json()["used_bytes"] == 1000
        assert [str(row["id"]) for row in await scene.rows()] == [first["id"]]
        assert await scene.listed(ref) == [first["id"]]
        # Below the quota still fits; another project has its own.
        small = await scene.uploaded(ref, "small.bin", b"\x03" * 500)
        assert (await scene.upload(ref, "byte.bin", b"\x04")).json()["code"] == ("quota_exceeded")
        elsewhere = await scene.uploaded(other_ref, "two.bin", second_bytes)
        assert {row["sha256"] for row in await scene.rows()} == {
            first["sha256"],
            small["sha256"],
            elsewhere["sha256"],
        }
        # A refused upload's bytes are stored before its row is refused; no row names
        # them (those of "two.bin" are now the other project's), so the sweep removes them.
        assert sha(b"\x04") in scene.blobs()
        assert await scene.cases.sweep(now=scene.after_grace()) == 1
        assert scene.blobs() == {first["sha256"], small["sha256"], elsewhere["sha256"]}


async def test_the_same_bytes_are_stored_once(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    one = await scene.uploaded(ref, "one.png", PNG)
    two = await scene.uploaded(ref, "two.png", PNG, user=REPORTER)
    assert one["id"] != two["id"]
    assert one["sha256"] == two["sha256"] == sha(PNG)
    assert len(await scene.rows()) == 2
    assert scene.blobs() == {sha(PNG)}
    assert scene.tmp_files() == []
    assert (await scene.content(two["id"])).content == PNG


# -- 4. bad bodies ----------------------------------------------------------------------------


async def test_a_body_that_is_not_one_file_part_is_refused(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    path = f"/tickets/{ref}/attachments"
    refusals = {
        "json": await scene.call(DEV, "POST", path, json={"file": "aGVsbG8="}),
        "no file part": await scene.call(
            DEV, "POST", path, files={"attachment": ("a.txt", TEXT, "text/plain")}
        ),
        "a field, no file part": await scene.call(
            DEV, "POST", path, data={"file": "not a file"}, files={"x": ("a", b"x")}
        ),
        "two file parts": await scene.call(
            DEV,
            "POST",
            path,
            files=[("file", ("a.txt", TEXT, "text/plain")), ("file", ("b.png", PNG, "image/png"))],
        ),
        "empty body": await scene.call(
            DEV, "POST", path, headers={"Content-Type": "multipart/form-data; boundary=x"}
        ),
    }
    for name, refused in refusals.items():
        assert refused.status_code == 422, (name, refused.status_code, refused.text)
        assert refused.json()["code"] == "validation_error", name
        assert ["body", "file"] in errors_at(refused), (name, refused.text)
    assert await scene.rows() == []
    assert await scene.listed(ref) == []

    for unknown in ("ATT-999", str(uuid.uuid4()), "NOPE-1"):
        missing = await scene.upload(unknown, "a.txt", TEXT)
        assert missing.status_code == 404, (unknown, missing.text)
        assert missing.json()["code"] == "not_found"
        listing = await scene.call(VIEWER, "GET", f"/tickets/{unknown}/attachments")
        assert listing.status_code == 404
    for path in (f"/attachments/{uuid.uuid4()}", f"/attachments/{uuid.uuid4()}/content"):
        assert (await scene.call(VIEWER, "GET", path)).status_code == 404
    assert (await scene.call(MAINTAINER, "DELETE", f"/attachments/{uuid.uuid4()}")).status_code == (
        404
    )
    assert await scene.rows() == []
    assert scene.blobs() == set()


# -- 5. permissions ---------------------------------------------------------------------------


async def test_who_uploads_reads_and_deletes(scene: Scene) -> None:
    project = scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]

    by_reporter = await scene.uploaded(ref, "reporter.txt", TEXT, user=REPORTER)
    by_dev = await scene.uploaded(ref, "dev.png", PNG, user=DEV)
    forbidden = await scene.upload(ref, "viewer.txt", b"viewer's bytes", user=VIEWER)
    assert forbidden.status_code == 403, forbidden.text
    assert sha(b"viewer's bytes") not in scene.blobs()

    # A viewer reads.
    assert await scene.listed(ref, VIEWER) == [by_reporter["id"], by_dev["id"]]
    assert (await scene.call(VIEWER, "GET", f"/attachments/{by_dev['id']}")).status_code == 200
    assert (await scene.content(by_dev["id"], user=VIEWER)).content == PNG

    # Without a token, nothing at all.
    anonymous = [
        await scene.api.client.post(
            f"/api/v1/tickets/{ref}/attachments", files={"file": ("a.txt", b"anon")}
        ),
        await scene.api.client.get(f"/api/v1/tickets/{ref}/attachments"),
        await scene.api.client.get(f"/api/v1/attachments/{by_dev['id']}"),
        await scene.api.client.get(f"/api/v1/attachments/{by_dev['id']}/content"),
        await scene.api.client.delete(f"/api/v1/attachments/{by_dev['id']}"),
    ]
    assert [response.status_code for response in anonymous] == [401] * 5
    assert sha(b"anon") not in scene.blobs()

    # An outsider learns nothing.
    outsider = [
        await scene.upload(ref, "x.txt", b"outsider's bytes", user=STRANGER),
        await scene.call(STRANGER, "GET", f"/tickets/{ref}/attachments"),
        await scene.call(STRANGER, "GET", f"/attachments/{by_dev['id']}"),
        await scene.content(by_dev["id"], user=STRANGER),
        await scene.call(STRANGER, "DELETE", f"/attachments/{by_dev['id']}"),
    ]
    for response in outsider:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.json()["code"] == "not_found"
    assert sha(b"outsider's bytes") not in scene.blobs()

    # Deleting: another developer may not; the uploader and a maintainer may.
    other_dev = await scene.call(DEV2, "DELETE", f"/attachments/{by_reporter['id']}")
    assert other_dev.status_code == 403, other_dev.text
    assert (await scene.call(VIEWER, "DELETE", f"/attachments/{by_dev['id']}")).status_code == 403
    assert await scene.listed(ref) == [by_reporter["id"], by_dev["id"]]
    own = await scene.call(REPORTER, "DELETE", f"/attachments/{by_reporter['id']}")
    assert own.status_code == 204, own.text
    assert (await scene.call(VIEWER, "GET", f"/attachments/{by_reporter['id']}")).status_code == (
        404
    )
    assert (await scene.content(by_reporter["id"])).status_code == 404
    again = await scene.call(REPORTER, "DELETE", f"/attachments/{by_reporter['id']}")
    assert again.status_code == 404

    another = await scene.uploaded(ref, "dev2.txt", b"more", user=DEV2)
    # An archived project is read-only.
    project.archived = True
    archived = await scene.upload(ref, "late.txt", b"late bytes", user=DEV)
    assert archived.status_code == 409, archived.text
    assert archived.json()["code"] == "project_archived"
    assert sha(b"late bytes") not in scene.blobs()
    archived_delete = await scene.call(MAINTAINER, "DELETE", f"/attachments/{another['id']}")
    assert archived_delete.status_code == 409, archived_delete.text
    assert (await scene.content(another["id"])).content == b"more"
    project.archived = False

    by_maintainer = await scene.call(MAINTAINER, "DELETE", f"/attachments/{by_dev['id']}")
    assert by_maintainer.status_code == 204, by_maintainer.text
    assert await scene.listed(ref) == [another["id"]]


# -- 6. a deleted ticket ----------------------------------------------------------------------


async def test_a_deleted_ticket_hides_its_attachments(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    attachment = await scene.uploaded(ref, "shot.png", PNG)
    deleted = await scene.call(MAINTAINER, "DELETE", f"/tickets/{ref}")
    assert deleted.status_code == 204, deleted.text

    hidden = [
        await scene.call(VIEWER, "GET", f"/attachments/{attachment['id']}"),
        await scene.content(attachment["id"]),
        await scene.call(VIEWER, "GET", f"/tickets/{ref}/attachments"),
        await scene.upload(ref, "late.png", b"late", user=DEV),
        await scene.call(MAINTAINER, "DELETE", f"/attachments/{attachment['id']}"),
    ]
    for response in hidden:
        assert response.status_code == 404, (response.request.url, response.text)
    assert len(await scene.rows()) == 1
    # The bytes stay while the row does: the sweep keeps them.
    await scene.cases.sweep(now=scene.after_grace())
    assert scene.blobs() == {sha(PNG)}

    restored = await scene.call(MAINTAINER, "POST", f"/tickets/{ref}/restore")
    assert restored.status_code == 200, restored.text
    assert await scene.listed(ref) == [attachment["id"]]
    assert (await scene.call(VIEWER, "GET", f"/attachments/{attachment['id']}")).json() == (
        attachment
    )
    assert (await scene.content(attachment["id"])).content == PNG


# -- 7. events --------------------------------------------------------------------------------


async def test_uploads_and_deletions_are_events(scene: Scene) -> None:
    scene.project("ATT")
    ticket = await scene.ticket("ATT")
    attachment = await scene.uploaded(ticket["key"], "shot.png", PNG, user=REPORTER)
    expected = {
        "id": attachment["id"],
        "filename": "shot.png",
        "content_type": "image/png",
        "size": len(PNG),
        "sha256": sha(PNG),
        "uploader_id": str(REPORTER),
    }
    events = await scene.attachment_events()
    assert [key for key, _ in events] == ["ticket.attachment_added"]
    added = events[0][1]["data"]
    assert added["attachment"] == expected
    assert added["id"] == ticket["id"]
    assert added["key"] == ticket["key"]

    removed = await scene.call(MAINTAINER, "DELETE", f"/attachments/{attachment['id']}")
    assert removed.status_code == 204
    events = await scene.attachment_events()
    assert [key for key, _ in events] == ["ticket.attachment_added", "ticket.attachment_removed"]
    gone = events[1][1]["data"]
    assert gone["attachment"] == expected
    assert gone["id"] == ticket["id"]
    # Refused writes are no events.
    await scene.upload(ticket["key"], "v.txt", b"v", user=VIEWER)
    await scene.call(DEV2, "DELETE", f"/attachments/{attachment['id']}")
    assert len(await scene.attachment_events()) == 2


# -- 8. crash safety and the sweep --------------------------------------------------------------


async def test_a_body_that_breaks_off_leaves_nothing(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]

    class CutOffError(Exception):
        pass

    async def cut_off() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"\x00partial upload\xff" * 100
        raise CutOffError

    with pytest.raises(CutOffError):
        await scene.cases.upload(scene.principal(DEV), ref, "cut.bin", cut_off())
    assert await scene.rows() == []
    assert await scene.attachment_events() == []
    assert scene.blobs() == set()
    assert await scene.cases.sweep(now=scene.after_grace()) == 0
    assert scene.tmp_files() == []
    assert scene.blobs() == set()

    # A process killed mid-write leaves its temporary file (no `finally` ran): the
    # sweep removes it once it is past the grace period, not before.
    scene.root.joinpath("tmp").mkdir(parents=True, exist_ok=True)
    abandoned = scene.root / "tmp" / f"{uuid.uuid4()}.part"
    abandoned.write_bytes(b"half an upload")
    await scene.cases.sweep()
    assert scene.tmp_files() == [abandoned]
    await scene.cases.sweep(now=scene.after_grace())
    assert scene.tmp_files() == []
    # The service still takes uploads.
    assert (await scene.uploaded(ref, "whole.png", PNG))["size"] == len(PNG)


async def test_bytes_without_their_row_are_swept_after_the_grace(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    content = b"bytes that never got their row\n"
    async with injected_fault(scene.db, fault_on("INSERT", "tickets.attachments")) as fault:
        try:
            failed = await scene.upload(ref, "lost.txt", content)
        except Exception as exc:  # the error escaped the in-process app
            if "injected fault" not in str(exc):
                raise
        else:
            assert failed.status_code == 500, failed.text
            assert "problem+json" in failed.headers["content-type"]
        assert await fault.fired() == 1
    assert await scene.rows() == []
    assert await scene.attachment_events() == []
    assert await scene.listed(ref) == []
    assert scene.blobs() == {sha(content)}
    assert scene.tmp_files() == []

    # Within the grace period (an upload may be between its bytes and its row) they stay.
    assert await scene.cases.sweep() == 0
    assert scene.blobs() == {sha(content)}
    assert await scene.cases.sweep(now=scene.after_grace()) == 1
    assert scene.blobs() == set()
    assert await scene.cases.sweep(now=scene.after_grace()) == 0


@pytest.mark.parametrize(
    "fault",
    [
        fault_on("INSERT", "tickets.attachments"),
        fault_on("INSERT", "tickets.outbox", when=routing_key_is("ticket.attachment_added")),
        fault_at_commit("INSERT", "tickets.attachments"),
    ],
    ids=["on the row", "on the event", "at the commit"],
)
async def test_an_upload_s_row_and_event_are_one_transaction(scene: Scene, fault: Any) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    created = await assert_write_is_atomic(
        scene.db,
        fault,
        lambda: scene.upload(ref, "shot.png", PNG),
        tables=["attachments", "outbox", "tickets"],
        status=201,
        events=["ticket.attachment_added"],
    )
    assert await scene.listed(ref) == [created.json()["id"]]
    assert scene.blobs() == {sha(PNG)}


@pytest.mark.parametrize(
    "fault",
    [
        fault_on("DELETE", "tickets.attachments"),
        fault_on("INSERT", "tickets.outbox", when=routing_key_is("ticket.attachment_removed")),
        fault_at_commit("DELETE", "tickets.attachments"),
    ],
    ids=["on the row", "on the event", "at the commit"],
)
async def test_a_deletion_s_row_and_event_are_one_transaction(scene: Scene, fault: Any) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    attachment = await scene.uploaded(ref, "shot.png", PNG)
    await assert_write_is_atomic(
        scene.db,
        fault,
        lambda: scene.call(MAINTAINER, "DELETE", f"/attachments/{attachment['id']}"),
        tables=["attachments", "outbox", "tickets"],
        status=204,
        events=["ticket.attachment_removed"],
    )
    assert await scene.listed(ref) == []


async def test_the_sweep_keeps_what_rows_name_and_what_was_just_stored(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    kept = await scene.uploaded(ref, "kept.png", PNG)
    twice_a = await scene.uploaded(ref, "a.txt", TEXT)
    twice_b = await scene.uploaded(ref, "b.txt", TEXT)
    assert await scene.cases.sweep(now=scene.after_grace()) == 0
    assert scene.blobs() == {sha(PNG), sha(TEXT)}

    # The same bytes attached twice: deleting one keeps them, deleting both frees them.
    await scene.call(DEV, "DELETE", f"/attachments/{twice_a['id']}")
    assert await scene.cases.sweep(now=scene.after_grace()) == 0
    assert scene.blobs() == {sha(PNG), sha(TEXT)}
    await scene.call(DEV, "DELETE", f"/attachments/{twice_b['id']}")
    assert await scene.cases.sweep() == 0  # within the grace period
    assert scene.blobs() == {sha(PNG), sha(TEXT)}
    assert await scene.cases.sweep(now=scene.after_grace()) == 1
    assert scene.blobs() == {sha(PNG)}
    assert (await scene.content(kept["id"])).content == PNG

    # Bytes that no row names, stored long ago, are uploaded again while a sweep runs:
    # between the sweep's listing (which found them old) and its deletion, the new
    # upload has written them (a fresh mtime) but not yet its row. They are kept.
    orphan = b"an old orphan, uploaded again\n"
    stored = await scene.cases.store.put(_once(orphan), max_bytes=10_000)
    long_ago = (datetime.now(UTC) - 2 * scene.cases.sweep_grace).timestamp()
    os.utime(scene.blob_path(stored.sha256), (long_ago, long_ago))
    store = scene.cases.store
    listing = store.older_than

    async def older_than_then_reuploaded(cutoff: datetime) -> list[str]:
        found = await listing(cutoff)
        assert stored.sha256 in found
        await store.put(_once(orphan), max_bytes=10_000)  # the bytes, not yet the row
        return found

    store.older_than = older_than_then_reuploaded  # type: ignore[method-assign]
    try:
        await scene.cases.sweep()
    finally:
        del store.older_than
    assert scene.blob_path(stored.sha256).read_bytes() == orphan
    assert scene.blobs() == {sha(PNG), stored.sha256}

    # The same orphan, not uploaded again, goes (the control of the case above).
    os.utime(scene.blob_path(stored.sha256), (long_ago, long_ago))
    assert await scene.cases.sweep() == 1
    assert scene.blobs() == {sha(PNG)}


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


# -- 9. references in markdown ------------------------------------------------------------------


async def test_a_comment_links_an_attachment_to_its_download(scene: Scene) -> None:
    scene.project("ATT")
    ref = (await scene.ticket("ATT"))["key"]
    attachment = await scene.uploaded(ref, "shot.png", PNG)
    download = f"/api/v1/attachments/{attachment['id']}/content"
    comment = await scene.call(
        DEV,
        "POST",
        f"/tickets/{ref}/comments",
        json={"body": f"See ![shot](attachment:{attachment['id']}) and [the log](attachment:x)."},
    )
    assert comment.status_code == 201, comment.text
    body_html = comment.json()["body_html"]
    assert f'href="{download}"' in body_html
    assert ">shot</a>" in body_html
    assert "<img" not in body_html
    assert "attachment:" + attachment["id"] not in body_html
    listed = await scene.call(VIEWER, "GET", f"/tickets/{ref}/comments")
    assert listed.json()["items"][0]["body_html"] == body_html

    described = await scene.call(
        DEV,
        "PATCH",
        f"/tickets/{ref}",
        json={"description": f"[shot](attachment:{attachment['id']})"},
    )
    assert described.status_code == 200, described.text
    assert f'href="{download}"' in described.json()["description_html"]
