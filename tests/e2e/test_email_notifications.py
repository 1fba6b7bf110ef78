"""E-mail notifications (docs/adr/0044) end to end: changes made through the gateway,
mails read from the run's SMTP sink (one `.eml` file per message): a mail for each
notification type, threading per ticket, preferences, one-click unsubscribe without a
login, digests, and nothing for deactivated users or ex-members."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_testkit import register, wait_until
from bugtracker_testkit.mail import read_mails

pytestmark = pytest.mark.e2e

PREFS = "/api/v1/users/me/notification-preferences"
PASSWORD = "correct horse battery staple 42"


@dataclass(eq=False)  # hashable by identity: people key role maps
class Person:
    id: str
    email: str
    headers: dict[str, str]
    name: str


@pytest.fixture(scope="module")
def api(system: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture
def person(api: httpx.Client) -> Callable[[str], Person]:
    def make(name: str) -> Person:
        user_id, address = register(api, name, password=PASSWORD)
        login = api.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        return Person(user_id, address, {"Authorization": f"Bearer {token}"}, name)

    return make


def mails_to(infra: Stack, address: str) -> list[EmailMessage]:
    assert infra.mail_dir is not None, "the test stack runs a mail sink"
    return [m for m in read_mails(infra.mail_dir) if address in str(m["To"])]


def await_mails(infra: Stack, address: str, count: int) -> list[EmailMessage]:
    return wait_until(lambda: mails_to(infra, address), lambda got: len(got) >= count, within=20)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture
def project(api: httpx.Client) -> Callable[[Person, dict[Person, str]], str]:
    def make(owner: Person, members: dict[Person, str]) -> str:
        key = "M" + uuid.uuid4().hex[:6].upper()
        created = api.post(
            "/api/v1/projects", json={"key": key, "name": "Mail"}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        for member, role in members.items():
            added = api.post(
                f"/api/v1/projects/{key}/members",
                json={"user_id": member.id, "role": role},
                headers=owner.headers,
            )
            assert added.status_code == 201, added.text
        return key

    return make


def test_each_notification_type_is_mailed_and_a_tickets_mails_form_one_thread(
    api: httpx.Client, infra: Stack, person: Callable[[str], Person], project: Any
) -> None:
    ann, bob = person("ann"), person("bob")
    key = project(ann, {bob: "developer"})
    (added,) = await_mails(infra, bob.email, 1)
    assert added["Subject"].startswith("You were added to")

    ticket = api.post(
        f"/api/v1/projects/{key}/tickets",
        json={"title": "Crash on save", "assignee_id": bob.id},
        headers=ann.headers,
    )
    assert ticket.status_code == 201, ticket.text
    ticket_key, ticket_id = ticket.json()["key"], ticket.json()["id"]
    commented = api.post(
        f"/api/v1/tickets/{ticket_key}/comments",
        json={"body": "Seen on 2.3 too"},
        headers=ann.headers,
    )
    assert commented.status_code == 201, commented.text
    mentioned = api.post(
        f"/api/v1/tickets/{ticket_key}/comments",
        json={"body": f"@{bob.email} can you look?"},
        headers=ann.headers,
    )
    assert mentioned.status_code == 201, mentioned.text
    moved = api.post(
        f"/api/v1/tickets/{ticket_key}/transitions",
        json={"to": "in_progress"},
        headers=bob.headers,
    )
    assert moved.status_code == 200, moved.text

    blocker = api.post(
        f"/api/v1/projects/{key}/tickets", json={"title": "Blocker"}, headers=ann.headers
    ).json()["key"]
    blocked = api.post(
        f"/api/v1/projects/{key}/tickets",
        json={"title": "Blocked", "assignee_id": bob.id},
        headers=ann.headers,
    ).json()["key"]
    related = api.post(
        f"/api/v1/tickets/{blocker}/relations",
        json={"type": "blocks", "key": blocked},
        headers=ann.headers,
    )
    assert related.status_code == 201, related.text
    finished = api.post(
        f"/api/v1/tickets/{blocker}/transitions",
        json={"to": "closed", "resolution": "fixed"},
        headers=ann.headers,
    )
    assert finished.status_code == 200, finished.text

    # Bob: added, assigned twice, a comment, a mention, an unblocking; Ann: a status change.
    to_bob = await_mails(infra, bob.email, 6)
    to_ann = await_mails(infra, ann.email, 1)
    texts = [text_of(m) for m in to_bob + to_ann]
    for expected in (
        "You were added to",
        f"You were assigned {ticket_key}",
        "New comment",
        "mentioned",
        f"{ticket_key} moved from open to in_progress",
        f"{blocked} is unblocked",
    ):
        assert any(expected in text for text in texts), expected
    thread = f"<ticket-{ticket_id}@localhost>"
    about_ticket = [m for m in to_bob + to_ann if m["In-Reply-To"] == thread]
    assert len(about_ticket) == 4  # assigned, commented, mentioned, moved
    for mail in about_ticket:
        assert mail["Subject"] == f"[{ticket_key}] Crash on save"
        assert mail["References"] == thread
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail.get_body(("html",)) is not None
    assert len({m["Message-ID"] for m in to_bob + to_ann}) == len(to_bob + to_ann)


def test_one_click_unsubscribe_needs_no_login_and_stops_that_type_only(
    api: httpx.Client, infra: Stack, person: Callable[[str], Person], project: Any
) -> None:
    ann, bob = person("ann"), person("bob")
    key = project(ann, {bob: "developer"})
    first = api.post(
        f"/api/v1/projects/{key}/tickets",
        json={"title": "First", "assignee_id": bob.id},
        headers=ann.headers,
    )
    assert first.status_code == 201
    assigned = wait_until(
        lambda: [m for m in mails_to(infra, bob.email) if "First" in str(m["Subject"])],
        bool,
        within=20,
    )[0]
    url = str(assigned["List-Unsubscribe"]).strip().strip("<>")
    token = parse_qs(urlsplit(url).query)["token"][0]
    done = api.post(
        "/api/v1/notifications/unsubscribe",
        params={"token": token},
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    prefs = api.get(PREFS, headers=bob.headers).json()
    assert prefs["events"]["ticket.assigned"] == {"in_app": True, "email": False}
    assert prefs["events"]["ticket.commented"] == {"in_app": True, "email": True}
    forged = api.post("/api/v1/notifications/unsubscribe", params={"token": token[:-2] + "xx"})
    assert forged.status_code == 422

    second = api.post(
        f"/api/v1/projects/{key}/tickets",
        json={"title": "Second", "assignee_id": bob.id},
        headers=ann.headers,
    )
    assert second.status_code == 201
    api.post(
        f"/api/v1/tickets/{second.json()['key']}/comments",
        json={"body": "marker"},
        headers=ann.headers,
    )
    got = wait_until(
        lambda: mails_to(infra, bob.email),
        lambda mails: any("New comment" in text_of(m) for m in mails),
        within=20,
    )
    assert not [m for m in got if "Second" in str(m["Subject"]) and "assigned" in text_of(m)]
    notes = api.get("/api/v1/notifications", headers=bob.headers).json()["items"]
    assert any(
        n["type"] == "ticket.assigned" and n["ticket_key"] == second.json()["key"] for n in notes
    )


def test_preferences_are_validated_and_conditional(
    api: httpx.Client, person: Callable[[str], Person]
) -> None:
    ann = person("ann")
    shown = api.get(PREFS, headers=ann.headers)
    assert shown.status_code == 200
    assert shown.json()["email"] == "immediate"
    assert set(shown.json()["events"]) >= {"ticket.assigned", "ticket.commented"}
    for body in (
        {"email": "sometimes"},
        {"email": "digest", "digest_interval_minutes": 5},
        {"email": "digest", "events": {"ticket.nope": {"email": False}}},
        {"email": "off", "extra": True},
    ):
        refused = api.put(PREFS, json=body, headers=ann.headers)
        assert refused.status_code == 422, body
    etag = shown.headers["etag"]
    saved = api.put(PREFS, json={"email": "off"}, headers=ann.headers | {"If-Match": etag})
    assert saved.status_code == 200
    stale = api.put(PREFS, json={"email": "digest"}, headers=ann.headers | {"If-Match": etag})
    assert stale.status_code == 412
    assert api.get(PREFS).status_code == 401


def test_a_digest_gathers_notifications_into_one_mail(
    api: httpx.Client, infra: Stack, person: Callable[[str], Person], project: Any
) -> None:
    ann, bob = person("ann"), person("bob")
    put = api.put(
        PREFS, json={"email": "digest", "digest_interval_minutes": 15}, headers=bob.headers
    )
    assert put.status_code == 200
    key = project(ann, {bob: "developer"})
    for title in ("One", "Two"):
        made = api.post(
            f"/api/v1/projects/{key}/tickets",
            json={"title": title, "assignee_id": bob.id},
            headers=ann.headers,
        )
        assert made.status_code == 201

    async def queued() -> int:
        db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:
            count: int = await db.fetchval(
                "SELECT count(*) FROM notifications.mails WHERE user_id = $1 AND status = 'queued'",
                uuid.UUID(bob.id),
            )
            if count >= 3:  # added to the project, and two assignments
                await db.execute(
                    "UPDATE notifications.mails SET created_at = created_at - interval '16 min' "
                    "WHERE user_id = $1 AND status = 'queued'",
                    uuid.UUID(bob.id),
                )
            return count
        finally:
            await db.close()

    wait_until(lambda: asyncio.run(queued()), lambda count: count >= 3, within=20)
    (digest,) = await_mails(infra, bob.email, 1)
    assert digest["Subject"] == "[Bugtracker] 3 notifications"
    body = text_of(digest)
    assert "One" in body
    assert "Two" in body


def test_deactivated_users_and_ex_members_get_no_mail(
    api: httpx.Client, infra: Stack, system: Any, person: Callable[[str], Person], project: Any
) -> None:
    ann, bob, gone, left = person("ann"), person("bob"), person("gone"), person("left")
    key = project(ann, {bob: "developer", gone: "developer", left: "developer"})
    await_mails(infra, left.email, 1)  # added to the project
    admin_login = api.post(
        "/api/v1/auth/login", json={"email": system.admin_email, "password": system.admin_password}
    )
    admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
    off = api.patch(f"/api/v1/users/{gone.id}", json={"is_active": False}, headers=admin)
    assert off.status_code == 200, off.text
    removed = api.delete(f"/api/v1/projects/{key}/members/{left.id}", headers=ann.headers)
    assert removed.status_code == 204, removed.text
    before_gone, before_left = len(mails_to(infra, gone.email)), len(mails_to(infra, left.email))
    for member in (gone, left, bob):  # bob's mail comes last: the marker
        made = api.post(
            f"/api/v1/projects/{key}/tickets",
            json={"title": f"For {member.name}", "assignee_id": member.id},
            headers=ann.headers,
        )
        # An ex-member cannot be assigned any more; the deactivated one still can.
        assert made.status_code in (201, 409, 422), made.text
    await_mails(infra, bob.email, 2)
    assert len(mails_to(infra, gone.email)) == before_gone
    assert len(mails_to(infra, left.email)) == before_left
