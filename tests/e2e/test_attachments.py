"""Attachments (docs/adr/0041) through the gateway, on both storage adapters.

"directory": the session's system, whose tickets replicas keep the bytes in the run's
attachment directory and stream them. "s3": one more tickets process (same database and
broker) keeping the bytes in a moto S3 server, behind one more gateway; its downloads
answer 302 to a presigned URL of the store. Both have a limit on an attachment's size;
the S3 pair a small one, so that going past it is cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import subprocess
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from bugtracker_devstack.processes import free_port, stop_group
from bugtracker_devstack.stack import REPO_ROOT, Stack
from bugtracker_testkit import register_and_login
from bugtracker_testkit.s3 import moto_s3

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 25 * MIB
S3_MAX_BYTES = 2 * MIB
# What the gateway lets through on top of the largest attachment (the multipart framing).
UPLOAD_OVERHEAD_BYTES = 16 * 1024
READY_SECONDS = 60.0


def png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = png()
HTML = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n"


@dataclass(frozen=True)
class Storage:
    name: str
    gateway_url: str
    max_bytes: int
    # The S3 server the presigned URLs point at.
    store_url: str = ""

    @property
    def redirects(self) -> bool:
        return self.name == "s3"


@dataclass
class Team:
    ids: dict[str, str]
    headers: dict[str, dict[str, str]]


@dataclass(frozen=True)
class World:
    key: str
    project_id: str
    ticket_id: str


# -- the S3 pair ---------------------------------------------------------------------------


def _wait_ready(url: str, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == httpx.codes.OK:
                return
        except httpx.HTTPError:
            pass
        if child.poll() is not None or time.monotonic() > deadline:
            shown = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{url} not ready (exit code {child.poll()}): {shown}")
        time.sleep(0.1)  # the poll interval, not a wait for a fixed duration


def _on_port(command: list[str], port: int) -> list[str]:
    at = command.index("--port")
    return [*command[: at + 1], str(port), *command[at + 2 :]]


def _launch(
    command: list[str], env: dict[str, str], log: Path, children: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        child = subprocess.Popen(  # noqa: S603 (our own interpreter, the stack's argv)
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    children.append(child)
    return child


@pytest.fixture(scope="module")
def s3_storage(system: Any, infra: Stack) -> Iterator[Storage]:
    """One tickets process on moto's S3 and one gateway in front of it, launched as the
    stack launches its own, with a limit of S3_MAX_BYTES."""
    with moto_s3() as endpoint:
        tickets_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
        limit = {"BUGTRACKER_ATTACHMENTS_MAX_BYTES": str(S3_MAX_BYTES)}
        tickets_env = infra.env("tickets") | limit
        tickets_env.pop("BUGTRACKER_ATTACHMENTS_DIR", None)
        tickets_env |= {
            "BUGTRACKER_ATTACHMENTS_S3_ENDPOINT": endpoint,
            "BUGTRACKER_ATTACHMENTS_S3_BUCKET": f"e2e-attachments-{uuid.uuid4().hex[:8]}",
            "BUGTRACKER_ATTACHMENTS_S3_ACCESS_KEY": "e2eMotoAccessKey4711",
            "BUGTRACKER_ATTACHMENTS_S3_SECRET_KEY": "e2e-moto-secret-" + uuid.uuid4().hex,
            "BUGTRACKER_ATTACHMENTS_S3_REGION": "us-east-1",
        }
        gateway_env = infra.env("gateway") | limit
        gateway_env |= {
            "BUGTRACKER_GATEWAY_TICKETS_URL": f"http://127.0.0.1:{tickets_port}",
            "BUGTRACKER_GATEWAY_METRICS_PORT": str(metrics_port),
        }
        children: list[subprocess.Popen[bytes]] = []
        try:
            tickets_log = system.logs / "tickets-s3.log"
            tickets = _launch(
                _on_port(infra.command("tickets"), tickets_port),
                tickets_env,
                tickets_log,
                children,
            )
            _wait_ready(f"http://127.0.0.1:{tickets_port}/health/ready", tickets, tickets_log)
            gateway_log = system.logs / "gateway-s3.log"
            gateway = _launch(
                _on_port(infra.command("gateway"), gateway_port),
                gateway_env,
                gateway_log,
                children,
            )
            _wait_ready(f"http://127.0.0.1:{gateway_port}/health", gateway, gateway_log)
            yield Storage("s3", f"http://127.0.0.1:{gateway_port}", S3_MAX_BYTES, endpoint)
        finally:
            for child in reversed(children):
                stop_group(child)


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, system: Any, infra: Stack) -> Storage:
    if request.param == "s3":
        found: Storage = request.getfixturevalue("s3_storage")
        return found
    limit = int(infra.env("tickets").get("BUGTRACKER_ATTACHMENTS_MAX_BYTES", DEFAULT_MAX_BYTES))
    return Storage("directory", system.gateway_url, limit)


@pytest.fixture
def api(storage: Storage) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=storage.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def team(system: Any) -> Team:
    team = Team({}, {})
    with httpx.Client(base_url=system.gateway_url, timeout=15) as client:
        for name in ("owner", "maintainer", "developer", "reporter", "viewer", "outsider"):
            team.ids[name], team.headers[name] = register_and_login(client, f"att-{name}")
    return team


@pytest.fixture
def world(api: httpx.Client, team: Team, settle_tickets_view: Callable[[str], None]) -> World:
    return new_world(api, team, settle_tickets_view)


def new_world(api: httpx.Client, team: Team, settle_tickets_view: Callable[[str], None]) -> World:
    """A fresh project in which each of the team but the outsider holds their role, and one
    ticket the reporter filed."""
    key = "A" + uuid.uuid4().hex[:7].upper()
    owner = team.headers["owner"]
    project = api.post("/api/v1/projects", json={"key": key, "name": "files"}, headers=owner)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    for role in ("maintainer", "developer", "reporter", "viewer"):
        added = api.post(
            f"/api/v1/projects/{project_id}/members",
            json={"user_id": team.ids[role], "role": role},
            headers=owner,
        )
        assert added.status_code == 201, added.text
    settle_tickets_view(project_id)
    ticket = api.post(
        f"/api/v1/projects/{key}/tickets", json={"title": "crash"}, headers=team.headers["reporter"]
    )
    assert ticket.status_code == 201, ticket.text
    return World(key, project_id, ticket.json()["id"])


def upload(
    api: httpx.Client,
    world: World,
    headers: dict[str, str],
    content: bytes,
    filename: str = "file.bin",
    declared_type: str = "application/octet-stream",
) -> httpx.Response:
    return api.post(
        f"/api/v1/tickets/{world.ticket_id}/attachments",
        files={"file": (filename, content, declared_type)},
        headers=headers,
    )


def uploaded(api: httpx.Client, world: World, headers: dict[str, str], content: bytes) -> str:
    response = upload(api, world, headers, content)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def listed(api: httpx.Client, world: World, headers: dict[str, str]) -> list[str]:
    response = api.get(f"/api/v1/tickets/{world.ticket_id}/attachments", headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if code is not None:
        assert response.json()["code"] == code, response.text


def content_of(
    api: httpx.Client, storage: Storage, attachment_id: str, headers: dict[str, str]
) -> httpx.Response:
    """The attachment's bytes as a browser would get them: on S3 the gateway answers 302 to
    a presigned URL of the store, which is followed without the caller's credentials."""
    response = api.get(f"/api/v1/attachments/{attachment_id}/content", headers=headers)
    if not storage.redirects:
        assert response.status_code == 200, response.text
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "sandbox"
        return response
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{storage.store_url}/"), location
    assert "X-Amz-Signature=" in location
    assert "authorization" not in {k.lower() for k in response.headers}
    followed = httpx.get(location, timeout=30)
    assert followed.status_code == 200, followed.text
    return followed


# -- the tests -----------------------------------------------------------------------------


def test_upload_list_read_and_download(
    api: httpx.Client, storage: Storage, team: Team, world: World
) -> None:
    reporter = team.headers["reporter"]
    response = upload(api, world, reporter, PNG, filename="notes.txt", declared_type="text/plain")
    assert response.status_code == 201, response.text
    attachment = response.json()
    assert attachment["content_type"] == "image/png"  # sniffed, not the name's nor the part's
    assert attachment["filename"] == "notes.txt"
    assert attachment["size"] == len(PNG)
    assert attachment["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert attachment["uploader_id"] == team.ids["reporter"]
    assert attachment["ticket_id"] == world.ticket_id
    assert response.headers["location"] == f"/api/v1/attachments/{attachment['id']}"

    page = api.get(f"/api/v1/tickets/{world.ticket_id}/attachments", headers=reporter)
    assert page.status_code == 200, page.text
    assert page.json() == {"items": [attachment], "next_cursor": None}
    by_key = api.get(f"/api/v1/tickets/{world.key}-1/attachments", headers=reporter)
    assert by_key.json()["items"] == [attachment]
    metadata = api.get(f"/api/v1/attachments/{attachment['id']}", headers=reporter)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json() == attachment

    png_content = content_of(api, storage, attachment["id"], reporter)
    assert png_content.content == PNG
    assert png_content.headers["content-type"] == "image/png"
    assert png_content.headers["content-disposition"] == "inline; filename*=UTF-8''notes.txt"
    if not storage.redirects:
        assert png_content.headers["etag"] == f'"{attachment["sha256"]}"'
        assert png_content.headers["content-length"] == str(len(PNG))
        assert png_content.headers["accept-ranges"] == "bytes"

    page_file = upload(api, world, reporter, HTML, filename="page.html", declared_type="image/png")
    assert page_file.status_code == 201, page_file.text
    assert page_file.json()["content_type"] == "text/html"
    html_content = content_of(api, storage, page_file.json()["id"], reporter)
    assert html_content.content == HTML
    assert html_content.headers["content-disposition"] == "attachment; filename*=UTF-8''page.html"
    assert listed(api, world, reporter) == [attachment["id"], page_file.json()["id"]]


def test_ranges_and_revalidation_on_the_directory(
    system: Any, team: Team, settle_tickets_view: Callable[[str], None]
) -> None:
    """Range and If-None-Match, which only the directory adapter answers itself (the S3
    adapter redirects to the store)."""
    with httpx.Client(base_url=system.gateway_url, timeout=30) as client:
        place = new_world(client, team, settle_tickets_view)
        reporter = team.headers["reporter"]
        body = bytes(range(256)) * 4
        attachment_id = uploaded(client, place, reporter, body)
        url = f"/api/v1/attachments/{attachment_id}/content"
        etag = f'"{hashlib.sha256(body).hexdigest()}"'

        part = client.get(url, headers=reporter | {"Range": "bytes=2-5"})
        assert part.status_code == 206, part.text
        assert part.content == body[2:6]
        assert part.headers["content-range"] == f"bytes 2-5/{len(body)}"
        assert part.headers["content-length"] == "4"
        assert part.headers["etag"] == etag
        tail = client.get(url, headers=reporter | {"Range": "bytes=-3"})
        assert tail.status_code == 206
        assert tail.content == body[-3:]
        rest = client.get(url, headers=reporter | {"Range": "bytes=1020-"})
        assert rest.status_code == 206
        assert rest.content == body[1020:]

        outside = client.get(url, headers=reporter | {"Range": f"bytes={len(body)}-"})
        assert_problem(outside, 416, "range_not_satisfiable")
        assert outside.headers["content-range"] == f"bytes */{len(body)}"

        same = client.get(url, headers=reporter | {"If-None-Match": etag})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["etag"] == etag
        changed = client.get(url, headers=reporter | {"If-None-Match": '"other"'})
        assert changed.status_code == 200
        assert changed.content == body


def test_ranges_on_s3_are_the_stores_behind_the_redirect(
    s3_storage: Storage, team: Team, settle_tickets_view: Callable[[str], None]
) -> None:
    """With S3, the gateway answers 302 and the presigned URL serves Range and the
    attachment's headers itself."""
    with httpx.Client(base_url=s3_storage.gateway_url, timeout=30) as client:
        place = new_world(client, team, settle_tickets_view)
        reporter = team.headers["reporter"]
        body = bytes(range(256)) * 4
        attachment_id = uploaded(client, place, reporter, body)
        redirect = client.get(f"/api/v1/attachments/{attachment_id}/content", headers=reporter)
        assert redirect.status_code == 302, redirect.text
        location = redirect.headers["location"]
        part = httpx.get(location, headers={"Range": "bytes=2-5"}, timeout=30)
        assert part.status_code == 206, part.text
        assert part.content == body[2:6]
        assert part.headers["content-range"] == f"bytes 2-5/{len(body)}"
        assert part.headers["content-disposition"].startswith("attachment;")


def test_an_attachment_over_the_limit_is_refused(
    api: httpx.Client, storage: Storage, team: Team, world: World
) -> None:
    reporter = team.headers["reporter"]
    too_large = upload(api, world, reporter, b"x" * (storage.max_bytes + 1))
    assert_problem(too_large, 413, "payload_too_large")
    just_fits = upload(api, world, reporter, b"y" * storage.max_bytes)
    assert just_fits.status_code == 201, just_fits.text
    assert listed(api, world, reporter) == [just_fits.json()["id"]]


async def _exchange_head(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (and `body`) on a raw connection and read the answer's status and body
    without sending anything more."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        status = int(answer.split(b" ", 2)[1])
        length = 0
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return status, await asyncio.wait_for(reader.readexactly(length), 15)
    finally:
        writer.close()


def _upload_head(world: World, headers: dict[str, str], length: int, boundary: str) -> bytes:
    lines = [
        f"POST /api/v1/tickets/{world.ticket_id}/attachments HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: {headers['Authorization']}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {length}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    storage: Storage, team: Team, world: World
) -> None:
    declared = storage.max_bytes + UPLOAD_OVERHEAD_BYTES + 1
    head = _upload_head(world, team.headers["reporter"], declared, "b0undary")
    status, body = asyncio.run(_exchange_head(storage.gateway_url, head))
    assert status == 413, body
    assert b'"payload_too_large"' in body


def test_an_upload_cut_midway_leaves_nothing(
    api: httpx.Client, storage: Storage, team: Team, world: World
) -> None:
    reporter = team.headers["reporter"]
    boundary = "cutb0undary"
    preamble = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    declared = min(storage.max_bytes, MIB)

    async def cut() -> None:
        parts = urlsplit(storage.gateway_url)
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(_upload_head(world, reporter, declared, boundary) + preamble)
        writer.write(b"z" * (declared // 4))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    asyncio.run(cut())
    whole = uploaded(api, world, reporter, b"whole")
    assert listed(api, world, reporter) == [whole]


def test_who_may_do_what(api: httpx.Client, storage: Storage, team: Team, world: World) -> None:
    h = team.headers
    mine = uploaded(api, world, h["reporter"], b"the reporter's log")
    other = uploaded(api, world, h["reporter"], b"the reporter's other log")

    assert_problem(upload(api, world, h["viewer"], b"no"), 403)
    assert listed(api, world, h["viewer"]) == [mine, other]
    assert api.get(f"/api/v1/attachments/{mine}", headers=h["viewer"]).status_code == 200
    assert content_of(api, storage, mine, h["viewer"]).content == b"the reporter's log"

    outsider = h["outsider"]
    for response in (
        upload(api, world, outsider, b"no"),
        api.get(f"/api/v1/tickets/{world.ticket_id}/attachments", headers=outsider),
        api.get(f"/api/v1/attachments/{mine}", headers=outsider),
        api.get(f"/api/v1/attachments/{mine}/content", headers=outsider),
        api.delete(f"/api/v1/attachments/{mine}", headers=outsider),
    ):
        assert_problem(response, 404)

    assert_problem(api.delete(f"/api/v1/attachments/{mine}", headers=h["developer"]), 403)
    assert_problem(api.delete(f"/api/v1/attachments/{mine}", headers=h["viewer"]), 403)
    assert api.delete(f"/api/v1/attachments/{mine}", headers=h["reporter"]).status_code == 204
    assert_problem(api.get(f"/api/v1/attachments/{mine}", headers=h["reporter"]), 404)
    assert_problem(api.get(f"/api/v1/attachments/{mine}/content", headers=h["reporter"]), 404)
    assert_problem(api.delete(f"/api/v1/attachments/{mine}", headers=h["reporter"]), 404)
    assert api.delete(f"/api/v1/attachments/{other}", headers=h["maintainer"]).status_code == 204
    assert listed(api, world, h["viewer"]) == []


def test_a_deleted_ticket_hides_its_attachments(
    api: httpx.Client, storage: Storage, team: Team, world: World
) -> None:
    reporter, maintainer = team.headers["reporter"], team.headers["maintainer"]
    attachment_id = uploaded(api, world, reporter, b"evidence")
    ticket = f"/api/v1/tickets/{world.ticket_id}"
    assert api.delete(ticket, headers=maintainer).status_code == 204
    for headers in (reporter, maintainer):
        assert_problem(api.get(f"{ticket}/attachments", headers=headers), 404)
        assert_problem(api.get(f"/api/v1/attachments/{attachment_id}", headers=headers), 404)
        assert_problem(
            api.get(f"/api/v1/attachments/{attachment_id}/content", headers=headers), 404
        )
    assert_problem(upload(api, world, reporter, b"more"), 404)
    assert_problem(api.delete(f"/api/v1/attachments/{attachment_id}", headers=maintainer), 404)

    restored = api.post(f"{ticket}/restore", headers=maintainer)
    assert restored.status_code == 200, restored.text
    assert listed(api, world, reporter) == [attachment_id]
    assert api.get(f"/api/v1/attachments/{attachment_id}", headers=reporter).status_code == 200
    assert content_of(api, storage, attachment_id, reporter).content == b"evidence"


def test_a_comment_links_to_an_attachment(api: httpx.Client, team: Team, world: World) -> None:
    reporter = team.headers["reporter"]
    attachment_id = uploaded(api, world, reporter, PNG)
    comment = api.post(
        f"/api/v1/tickets/{world.ticket_id}/comments",
        json={"body": f"See ![x](attachment:{attachment_id})"},
        headers=reporter,
    )
    assert comment.status_code == 201, comment.text
    html = comment.json()["body_html"]
    assert f'href="/api/v1/attachments/{attachment_id}/content"' in html, html
    assert ">x</a>" in html, html
    assert "<img" not in html
    assert "attachment:" not in html
