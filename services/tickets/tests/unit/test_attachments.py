"""Attachments (docs/adr/0041): the domain rules, and the use cases through the in-memory
fakes (fakes.py, fake_attachments.py: the rows in the fake database, the bytes in a
FakeBlobStore whose clock the tests move)."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_tickets.api.attachment_routes import byte_range
from bugtracker_tickets.application.attachments import SWEEP_GRACE, Download
from bugtracker_tickets.application.use_cases import NewTicket
from bugtracker_tickets.domain.attachments import (
    MAX_FILENAME_BYTES,
    Attachment,
    download_path,
    safe_filename,
)
from bugtracker_tickets.domain.errors import (
    AttachmentNotFoundError,
    AttachmentTooLargeError,
    ForbiddenError,
    ProjectArchivedError,
    QuotaExceededError,
    RestoreExpiredError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.tickets import Ticket

from services.tickets.tests.unit.fakes import Team, TicketsWorld

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
TEXT = b"just some text, no image here\n"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def a_ticket(world: TicketsWorld, team: Team) -> Ticket:
    return (await world.tickets.create_ticket(team.developer, "BUG", NewTicket("t"))).ticket


async def upload(
    world: TicketsWorld,
    team: Team,
    ticket: Ticket,
    content: bytes = TEXT,
    *,
    filename: str = "notes.txt",
    who: str = "developer",
) -> Attachment:
    return await world.attachments.upload(
        getattr(team, who), str(ticket.key), filename, chunks(content)
    )


def rows(world: TicketsWorld) -> list[Attachment]:
    return list(world.database.state.attachments.values())


# -- the domain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/shot.png", "shot.png"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("mixed/dir\\name.txt", "name.txt"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
        ("photo\u202egnp.exe", "photognp.exe"),  # RTL override: shown as "photoexe.png"
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("  padded.txt \t", "padded.txt"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),  # NFC
        ("", "file"),
        (".", "file"),
        ("..", "file"),
        ("....", "file"),
        ("dir/", "file"),
        ("dir/..", "file"),
        ("\u202e\x00", "file"),
        (" . ", "file"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_a_long_ascii_name_is_cut_at_255_bytes() -> None:
    assert safe_filename("a" * 300) == "a" * MAX_FILENAME_BYTES


@pytest.mark.parametrize(("char", "fits"), [("\u00e9", 127), ("\u20ac", 85), ("\U0001f600", 63)])
def test_a_long_name_is_cut_on_a_character_boundary(char: str, fits: int) -> None:
    # 2-, 3- and 4-byte characters: 255 bytes end inside one, which is dropped whole.
    safe = safe_filename(char * 200)
    assert safe == char * fits
    assert len(safe.encode()) <= MAX_FILENAME_BYTES


def test_a_long_name_keeps_its_start_not_its_extension() -> None:
    safe = safe_filename("x" * 300 + ".png")
    assert safe == "x" * MAX_FILENAME_BYTES


def _attachment(content_type: str) -> Attachment:
    return Attachment(
        id=uuid.uuid4(),
        ticket_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        filename="f",
        content_type=content_type,
        size=1,
        sha256="0" * 64,
        uploader_id=uuid.uuid4(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/gif", "image/webp"])
def test_raster_images_are_shown_inline(content_type: str) -> None:
    assert _attachment(content_type).disposition == "inline"


@pytest.mark.parametrize(
    "content_type",
    [
        "image/svg+xml",
        "text/html",
        "text/plain",
        "application/pdf",
        "application/octet-stream",
        "image/bmp",
        "IMAGE/PNG",
        "image/png; charset=utf-8",
        "",
    ],
)
def test_everything_else_downloads(content_type: str) -> None:
    assert _attachment(content_type).disposition == "attachment"


def test_the_download_path() -> None:
    ident = uuid.uuid4()
    assert download_path(ident) == f"/api/v1/attachments/{ident}/content"


# -- upload ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "maintainer", "developer", "reporter"])
async def test_reporters_and_above_upload(world: TicketsWorld, team: Team, role: str) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, who=role)
    assert attachment.uploader_id == getattr(team, role).user_id
    assert rows(world) == [attachment]
    assert attachment.sha256 in world.blobs.blobs


@pytest.mark.parametrize(
    ("role", "error"), [("viewer", ForbiddenError), ("outsider", TicketNotFoundError)]
)
async def test_viewers_may_not_upload_and_outsiders_see_no_ticket(
    world: TicketsWorld, team: Team, role: str, error: type[Exception]
) -> None:
    ticket = await a_ticket(world, team)
    with pytest.raises(error):
        await upload(world, team, ticket, who=role)
    assert rows(world) == []
    assert world.blobs.blobs == {}  # refused before a byte was read
    assert world.blobs.chunks_read == []


async def test_no_upload_in_an_archived_project(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    team.project.archived = True
    with pytest.raises(ProjectArchivedError):
        await upload(world, team, ticket, who="maintainer")
    assert rows(world) == []
    assert world.blobs.blobs == {}


async def test_no_upload_on_a_deleted_ticket(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    await world.tickets.delete_ticket(team.maintainer, str(ticket.key))
    with pytest.raises(TicketNotFoundError):
        await upload(world, team, ticket)
    assert rows(world) == []
    assert world.blobs.blobs == {}


async def test_an_unknown_ticket_is_not_found(world: TicketsWorld, team: Team) -> None:
    with pytest.raises(TicketNotFoundError):
        await world.attachments.upload(team.developer, "BUG-99", "a.txt", chunks(TEXT))
    assert world.blobs.blobs == {}


async def test_too_large_stops_reading_and_stores_nothing(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    events_before = world.database.event_names()
    with pytest.raises(AttachmentTooLargeError) as raised:
        await world.attachments.upload(
            team.developer, str(ticket.key), "big.bin", chunks(*[b"x" * 400] * 5)
        )
    assert raised.value.extra == {"max_bytes": 1000}
    assert world.blobs.chunks_read == [3]  # the third chunk went past 1000 bytes
    assert world.blobs.blobs == {}
    assert rows(world) == []
    assert world.database.event_names() == events_before


async def test_exactly_max_bytes_is_accepted(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await world.attachments.upload(
        team.developer, str(ticket.key), "full.bin", chunks(b"a" * 600, b"b" * 400)
    )
    assert attachment.size == 1000
    assert world.blobs.blobs[attachment.sha256][0] == b"a" * 600 + b"b" * 400


async def test_the_quota_counts_the_projects_attachments() -> None:
    world = TicketsWorld(attachment_quota=500)
    team = world.team()
    ticket = await a_ticket(world, team)
    first = await upload(world, team, ticket, b"1" * 300)
    with pytest.raises(QuotaExceededError) as raised:
        await upload(world, team, ticket, b"2" * 201)
    assert raised.value.extra == {"quota_bytes": 500, "used_bytes": 300}
    assert rows(world) == [first]
    assert world.database.event_names().count("ticket.attachment_added") == 1
    # Up to the quota exactly is fine; another project has its own.
    await upload(world, team, ticket, b"3" * 200)
    other = world.team("OTH")
    other_ticket = (
        await world.tickets.create_ticket(other.developer, "OTH", NewTicket("o"))
    ).ticket
    await world.attachments.upload(other.developer, "OTH-1", "o.txt", chunks(b"4" * 500))
    assert other_ticket.key == "OTH-1"
    assert len(rows(world)) == 3


async def test_the_same_file_twice_counts_twice_against_the_quota() -> None:
    world = TicketsWorld(attachment_quota=500)
    team = world.team()
    ticket = await a_ticket(world, team)
    await upload(world, team, ticket, b"1" * 300)
    with pytest.raises(QuotaExceededError):
        await upload(world, team, ticket, b"1" * 300)


async def test_an_upload_writes_the_row_and_its_event(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, b"hello world", filename="../logs/run.log")
    assert attachment.ticket_id == ticket.id
    assert attachment.project_id == team.project.id
    assert attachment.filename == "run.log"
    assert attachment.content_type == "text/plain"
    assert attachment.size == 11
    assert attachment.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert attachment.uploader_id == team.developer.user_id
    assert world.database.state.attachments[attachment.id] == attachment
    assert world.blobs.blobs[attachment.sha256][0] == b"hello world"
    event = world.database.events[-1]
    assert event.name == "ticket.attachment_added"
    assert event.subject == str(ticket.id)
    assert event.actorid == str(team.developer.user_id)
    assert event.data["attachment"] == {
        "id": str(attachment.id),
        "filename": "run.log",
        "content_type": "text/plain",
        "size": 11,
        "sha256": attachment.sha256,
        "uploader_id": str(team.developer.user_id),
    }
    assert event.data["key"] == ticket.key


async def test_the_same_bytes_are_stored_once(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    a = await upload(world, team, ticket, TEXT, filename="a.txt")
    b = await upload(world, team, ticket, TEXT, filename="b.txt")
    assert a.id != b.id
    assert a.sha256 == b.sha256
    assert list(world.blobs.blobs) == [a.sha256]


async def test_the_content_type_is_sniffed_never_taken_from_the_name(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await a_ticket(world, team)
    fake_png = await upload(world, team, ticket, TEXT, filename="evil.png")
    assert fake_png.filename == "evil.png"
    assert fake_png.content_type == "text/plain"
    assert fake_png.disposition == "attachment"
    real_png = await upload(world, team, ticket, PNG, filename="notes.txt")
    assert real_png.content_type == "image/png"
    assert real_png.disposition == "inline"
    binary = await upload(world, team, ticket, b"\x00\x01\x02\xfe\xff", filename="a.txt")
    assert binary.content_type == "application/octet-stream"


# -- list, get, download -----------------------------------------------------------------------


async def test_attachments_are_listed_oldest_first_a_page_at_a_time(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await a_ticket(world, team)
    other = await a_ticket(world, team)
    uploaded = [await upload(world, team, ticket, bytes([i]) * 3) for i in range(3)]
    await upload(world, team, other, b"elsewhere")
    # Creation times in another order than the uploads: the list follows the times.
    base = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    for attachment, hours in zip(uploaded, (2, 0, 1), strict=True):
        world.database.state.attachments[attachment.id] = dataclasses.replace(
            attachment, created_at=base + timedelta(hours=hours)
        )
    expected = [uploaded[1].id, uploaded[2].id, uploaded[0].id]

    first = await world.attachments.list_attachments(team.viewer, ticket.key, limit=2, cursor=None)
    assert [a.id for a in first.items] == expected[:2]
    assert first.next_cursor is not None
    second = await world.attachments.list_attachments(
        team.viewer, ticket.key, limit=2, cursor=first.next_cursor
    )
    assert [a.id for a in second.items] == expected[2:]
    assert second.next_cursor is None
    whole = await world.attachments.list_attachments(team.viewer, ticket.key, limit=3, cursor=None)
    assert [a.id for a in whole.items] == expected
    assert whole.next_cursor is None


async def test_same_creation_time_is_ordered_by_id_across_pages(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await a_ticket(world, team)
    uploaded = [await upload(world, team, ticket, bytes([i])) for i in range(4)]
    at = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    for attachment in uploaded:
        world.database.state.attachments[attachment.id] = dataclasses.replace(
            attachment, created_at=at
        )
    seen: list[uuid.UUID] = []
    cursor = None
    for _ in range(4):
        page = await world.attachments.list_attachments(
            team.developer, ticket.key, limit=1, cursor=cursor
        )
        seen += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(a.id for a in uploaded)


async def test_outsiders_cannot_list(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    await upload(world, team, ticket)
    with pytest.raises(TicketNotFoundError):
        await world.attachments.list_attachments(team.outsider, ticket.key, limit=10, cursor=None)


async def test_members_get_and_download_an_attachment(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, PNG, filename="shot.png")
    assert await world.attachments.get_attachment(team.viewer, attachment.id) == attachment
    download = await world.attachments.download(team.viewer, attachment.id)
    assert download == Download(attachment, None)
    streamed = [c async for c in world.blobs.read(attachment.sha256)]
    assert b"".join(streamed) == PNG


async def test_outsiders_and_unknown_ids_get_not_found(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket)
    for call in (
        world.attachments.get_attachment(team.outsider, attachment.id),
        world.attachments.download(team.outsider, attachment.id),
        world.attachments.delete_attachment(team.outsider, attachment.id),
        world.attachments.get_attachment(team.owner, uuid.uuid4()),
        world.attachments.download(team.owner, uuid.uuid4()),
    ):
        with pytest.raises(AttachmentNotFoundError):
            await call
    assert rows(world) == [attachment]


async def test_a_deleted_tickets_attachments_are_not_found(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket)
    await world.tickets.delete_ticket(team.maintainer, str(ticket.key))
    with pytest.raises(AttachmentNotFoundError):
        await world.attachments.get_attachment(team.maintainer, attachment.id)
    with pytest.raises(AttachmentNotFoundError):
        await world.attachments.download(team.maintainer, attachment.id)
    with pytest.raises(AttachmentNotFoundError):
        await world.attachments.delete_attachment(team.developer, attachment.id)
    with pytest.raises(TicketNotFoundError):
        await world.attachments.list_attachments(team.maintainer, ticket.key, limit=5, cursor=None)


# -- delete ----------------------------------------------------------------------------------


async def test_the_uploader_deletes_their_attachment(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, who="reporter")
    world.attachments.wake.clear()
    await world.attachments.delete_attachment(team.reporter, attachment.id)
    assert rows(world) == []
    event = world.database.events[-1]
    assert event.name == "ticket.attachment_removed"
    assert event.subject == str(ticket.id)
    assert event.actorid == str(team.reporter.user_id)
    assert event.data["attachment"]["id"] == str(attachment.id)
    assert event.data["attachment"]["sha256"] == attachment.sha256
    # The bytes stay until the sweep; the sweep is woken.
    assert attachment.sha256 in world.blobs.blobs
    assert world.attachments.wake.is_set()
    with pytest.raises(AttachmentNotFoundError):
        await world.attachments.get_attachment(team.reporter, attachment.id)


@pytest.mark.parametrize("role", ["developer", "reporter", "viewer"])
async def test_other_members_below_maintainer_may_not_delete(
    world: TicketsWorld, team: Team, role: str
) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, who="owner")
    events_before = world.database.event_names()
    with pytest.raises(ForbiddenError):
        await world.attachments.delete_attachment(getattr(team, role), attachment.id)
    assert rows(world) == [attachment]
    assert world.database.event_names() == events_before


@pytest.mark.parametrize("role", ["maintainer", "owner"])
async def test_maintainers_delete_anyones_attachment(
    world: TicketsWorld, team: Team, role: str
) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket, who="developer")
    await world.attachments.delete_attachment(getattr(team, role), attachment.id)
    assert rows(world) == []
    assert world.database.event_names()[-1] == "ticket.attachment_removed"


async def test_no_delete_in_an_archived_project(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket)
    team.project.archived = True
    with pytest.raises(ProjectArchivedError):
        await world.attachments.delete_attachment(team.developer, attachment.id)
    assert rows(world) == [attachment]


async def test_deleting_twice_is_not_found(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    attachment = await upload(world, team, ticket)
    await world.attachments.delete_attachment(team.developer, attachment.id)
    with pytest.raises(AttachmentNotFoundError):
        await world.attachments.delete_attachment(team.developer, attachment.id)
    assert world.database.event_names().count("ticket.attachment_removed") == 1


# -- the sweep ---------------------------------------------------------------------------------


async def test_the_sweep_removes_only_old_blobs_no_row_names(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await a_ticket(world, team)
    shared_a = await upload(world, team, ticket, b"shared", filename="a.txt")
    shared_b = await upload(world, team, ticket, b"shared", filename="b.txt")
    lone = await upload(world, team, ticket, b"lone")
    kept = await upload(world, team, ticket, b"kept")
    # Bytes whose row never came (a crash between the two).
    crashed = await world.blobs.put(chunks(b"crashed"), max_bytes=1000)
    await world.attachments.delete_attachment(team.developer, shared_a.id)
    await world.attachments.delete_attachment(team.developer, lone.id)

    world.blobs.advance(SWEEP_GRACE + timedelta(seconds=1))
    fresh = await world.blobs.put(chunks(b"fresh orphan"), max_bytes=1000)

    assert await world.attachments.sweep(now=world.blobs.now) == 2
    assert set(world.blobs.blobs) == {shared_b.sha256, kept.sha256, fresh.sha256}
    assert lone.sha256 not in world.blobs.blobs
    assert crashed.sha256 not in world.blobs.blobs
    assert await world.attachments.sweep(now=world.blobs.now) == 0


async def test_the_sweep_keeps_orphans_within_the_grace(world: TicketsWorld, team: Team) -> None:
    orphan = await world.blobs.put(chunks(b"in flight"), max_bytes=1000)
    world.blobs.advance(SWEEP_GRACE)  # stored exactly at the cutoff: not before it
    assert await world.attachments.sweep(now=world.blobs.now) == 0
    assert orphan.sha256 in world.blobs.blobs
    world.blobs.advance(timedelta(microseconds=1))
    assert await world.attachments.sweep(now=world.blobs.now) == 1
    assert world.blobs.blobs == {}


async def test_bytes_uploaded_again_during_the_sweep_stay(world: TicketsWorld, team: Team) -> None:
    ticket = await a_ticket(world, team)
    old = await upload(world, team, ticket, b"again")
    await world.attachments.delete_attachment(team.developer, old.id)
    world.blobs.advance(2 * SWEEP_GRACE)
    listed = world.blobs.older_than

    async def listed_then_uploaded_again(cutoff: datetime) -> list[str]:
        # The same bytes arrive after the sweep listed them, before their row commits.
        found = await listed(cutoff)
        await world.blobs.put(chunks(b"again"), max_bytes=1000)
        return found

    world.blobs.older_than = listed_then_uploaded_again  # type: ignore[method-assign]
    assert old.sha256 in await listed(world.blobs.now - SWEEP_GRACE)
    await world.attachments.sweep(now=world.blobs.now)
    assert old.sha256 in world.blobs.blobs
    assert world.blobs.blobs[old.sha256][1] == world.blobs.now


async def test_the_sweep_with_nothing_stored(world: TicketsWorld) -> None:
    assert await world.attachments.sweep(now=world.blobs.now) == 0


# -- the purge past the restore window ------------------------------------------------------


async def test_tickets_past_the_restore_window_are_purged_with_their_attachments(
    world: TicketsWorld, team: Team
) -> None:
    old, recent = await a_ticket(world, team), await a_ticket(world, team)
    child = (
        await world.tickets.create_ticket(team.developer, "BUG", NewTicket("c", parent_id=old.id))
    ).ticket
    await upload(world, team, old)
    for ticket in (old, recent):
        await world.tickets.delete_ticket(team.maintainer, ticket.key)
    now = datetime.now(UTC)
    world.database.state.tickets[old.id].deleted_at = now - timedelta(days=31)

    with pytest.raises(RestoreExpiredError):
        await world.tickets.restore_ticket(team.maintainer, old.key)
    assert await world.tickets.purge_expired(now) == 1

    state = world.database.state
    assert old.id not in state.tickets
    assert recent.id in state.tickets  # inside the window: kept, and restorable
    assert state.tickets[child.id].parent_id is None
    assert rows(world) == []
    restored = await world.tickets.restore_ticket(team.maintainer, recent.key)
    assert restored.deleted_at is None


async def test_a_project_deleted_past_the_window_loses_its_tickets(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await a_ticket(world, team)
    now = datetime.now(UTC)
    world.database.state.deleted_projects[ticket.project_id] = now - timedelta(days=29)
    assert await world.tickets.purge_expired(now) == 0
    world.database.state.deleted_projects[ticket.project_id] = now - timedelta(days=31)
    assert await world.tickets.purge_expired(now) == 1
    assert ticket.id not in world.database.state.tickets


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=90-200", (90, 99)),  # an end past the file stops at its last byte
        ("bytes=5-3", None),  # invalid: ignored, the whole file
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
    ],
)
def test_the_range_asked_for(header: str | None, wanted: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == wanted


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-160", "bytes=-0"])
def test_a_range_outside_the_file_cannot_be_satisfied(header: str) -> None:
    with pytest.raises(ValueError, match=r"range|suffix"):
        byte_range(header, 100)
