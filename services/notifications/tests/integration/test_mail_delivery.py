"""E-mail notifications on real PostgreSQL, delivered to a real SMTP server (aiosmtpd) the
test starts: headers and threading, preferences through the API, digests, one-click
unsubscribe, a server away then back, deactivated users, and the mail written in the
event's transaction. Auth's keys and its user lookup stand in at the HTTP boundary."""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from bugtracker_devstack.processes import free_port
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_notifications.main import create_app
from bugtracker_notifications.settings import Settings
from bugtracker_testkit import app_client, eventually, fault_on, injected_fault
from fastapi import FastAPI

pytestmark = pytest.mark.integration

JWKS = "http://auth.test/.well-known/jwks.json"
PREFS = "/api/v1/users/me/notification-preferences"


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@contextmanager
def smtp_server(port: int) -> Iterator[Collector]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield collector
    finally:
        controller.stop()


@dataclass
class Auth:
    """Auth at the HTTP boundary: the keys and `POST /internal/users/lookup`."""

    keys: Any
    users: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, *, active: bool = True) -> uuid.UUID:
        user_id = uuid.uuid4()
        self.users[user_id] = {
            "id": str(user_id),
            "email": f"{name}@example.com",
            "display_name": name.title(),
            "is_active": active,
        }
        return user_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == JWKS:
            return httpx.Response(200, json=self.keys.jwks())
        if request.url.path == "/internal/users/lookup":
            wanted = {uuid.UUID(i) for i in json.loads(request.content)["ids"]}
            return httpx.Response(
                200, json={"users": [u for k, u in self.users.items() if k in wanted]}
            )
        return httpx.Response(404)


@pytest.fixture
def auth(keys: Any) -> Auth:
    return Auth(keys)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@asynccontextmanager
async def mailing_app(
    infra: Stack, auth: Auth, smtp_port: int
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    migrated(infra, "notifications")
    await truncate_schema(infra, "notifications")
    settings = Settings(
        database_url=infra.database_url("notifications"),
        amqp_url=infra.amqp_url("notifications"),
        jwks_url=JWKS,
        auth_url="http://auth.test",
        internal_token="internal-token-for-tests-0123456789",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        mail_from="Bugtracker <bugtracker@bt.example.com>",
        public_url="https://bt.example.com",
        unsubscribe_key="unsubscribe-key-for-tests-0123456789",
        mail_poll_seconds=0.1,
        mail_retry_seconds=0.2,
        digest_poll_seconds=0.2,
    )
    app = create_app(settings, http_transport=httpx.MockTransport(auth.handle))
    async with app_client(app) as client:

        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == httpx.codes.OK

        await eventually(ready, what="the service to be ready")
        yield app, client


async def arrived(collector: Collector, count: int) -> list[EmailMessage]:
    async def enough() -> list[EmailMessage] | None:
        return list(collector.messages) if len(collector.messages) >= count else None

    return await eventually(enough, what=f"{count} mails")


async def test_an_assignment_mails_the_assignee_threaded_with_one_click_unsubscribe(
    infra: Stack, auth: Auth, smtp_port: int, assigned: Callable[..., Any]
) -> None:
    ann, carl = auth.add("ann"), auth.add("carl")
    ticket_id = uuid.uuid4()
    with smtp_server(smtp_port) as smtp:
        async with mailing_app(infra, auth, smtp_port) as (app, client):
            first = assigned(actor_id=carl, assignee_id=ann, key="DEMO-1", ticket_id=ticket_id)
            await app.state.use_cases.handle_event(first)
            await app.state.use_cases.handle_event(first)  # redelivered: one mail
            second = assigned(actor_id=carl, assignee_id=ann, key="DEMO-1", ticket_id=ticket_id)
            await app.state.use_cases.handle_event(second)
            one, two = await arrived(smtp, 2)
            assert one["To"] == "Ann <ann@example.com>"
            assert one["Subject"] == "[DEMO-1] Crash on save"
            assert one["Auto-Submitted"] == "auto-generated"
            assert (
                one["In-Reply-To"] == two["In-Reply-To"] == f"<ticket-{ticket_id}@bt.example.com>"
            )
            assert one["References"] == one["In-Reply-To"]
            assert one["Message-ID"] != two["Message-ID"]
            assert one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            text = one.get_body(("plain",))
            html = one.get_body(("html",))
            assert text is not None
            assert html is not None
            assert "Carl" in text.get_content()
            assert "https://bt.example.com/api/v1/tickets/DEMO-1" in html.get_content()

            url = one["List-Unsubscribe"].strip("<>")
            token = parse_qs(urlsplit(url).query)["token"][0]
            done = await client.post(
                "/api/v1/notifications/unsubscribe",
                params={"token": token},
                content="List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200, done.text
            assert done.json()["events"]["ticket.assigned"] == {"in_app": True, "email": False}
            third = assigned(actor_id=carl, assignee_id=ann, key="DEMO-2")
            await app.state.use_cases.handle_event(third)
            prefs = await client.get(PREFS, headers=auth.keys.headers(ann))
            assert prefs.json()["events"]["ticket.assigned"]["email"] is False
            bad = await client.post(
                "/api/v1/notifications/unsubscribe", params={"token": token + "x"}
            )
            assert bad.status_code == 422
            assert bad.json()["code"] == "invalid_unsubscribe_token"
    assert len(smtp.messages) == 2  # nothing for the third


async def test_a_deactivated_user_gets_no_mail_and_in_app_only_keeps_the_inbox(
    infra: Stack, auth: Auth, smtp_port: int, assigned: Callable[..., Any]
) -> None:
    gone, bob, carl = auth.add("gone", active=False), auth.add("bob"), auth.add("carl")
    with smtp_server(smtp_port) as smtp:
        async with mailing_app(infra, auth, smtp_port) as (app, client):
            put = await client.put(
                PREFS,
                json={"email": "immediate", "events": {"ticket.assigned": {"in_app": False}}},
                headers=auth.keys.headers(bob),
            )
            assert put.status_code == 200, put.text
            await app.state.use_cases.handle_event(assigned(actor_id=carl, assignee_id=gone))
            await app.state.use_cases.handle_event(assigned(actor_id=carl, assignee_id=bob))
            (got,) = await arrived(smtp, 1)
            assert got["To"] == "Bob <bob@example.com>"
            listed = await client.get("/api/v1/notifications", headers=auth.keys.headers(bob))
            assert listed.json()["items"] == []  # in_app off
            db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
            try:

                async def skipped() -> bool:
                    status = await db.fetchval(
                        "SELECT status FROM notifications.mails WHERE user_id = $1", gone
                    )
                    return bool(status == "skipped")

                await eventually(skipped, what="the deactivated user's mail to be skipped")
            finally:
                await db.close()
    assert len(smtp.messages) == 1


async def test_mail_waits_while_the_server_is_away_and_arrives_once_when_back(
    infra: Stack, auth: Auth, smtp_port: int, assigned: Callable[..., Any]
) -> None:
    ann, carl = auth.add("ann"), auth.add("carl")
    async with mailing_app(infra, auth, smtp_port) as (app, _):
        event = assigned(actor_id=carl, assignee_id=ann)
        await app.state.use_cases.handle_event(event)
        db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:

            async def deferred() -> bool:
                attempts = await db.fetchval("SELECT attempts FROM notifications.mails")
                return bool(attempts and attempts >= 2)

            await eventually(deferred, what="two attempts while the server is away")
        finally:
            await db.close()
        with smtp_server(smtp_port) as smtp:
            (got,) = await arrived(smtp, 1)
            assert got["To"] == "Ann <ann@example.com>"
        assert len(smtp.messages) == 1


async def test_a_digest_gathers_the_queued_notifications(
    infra: Stack, auth: Auth, smtp_port: int, assigned: Callable[..., Any]
) -> None:
    ann, carl = auth.add("ann"), auth.add("carl")
    with smtp_server(smtp_port) as smtp:
        async with mailing_app(infra, auth, smtp_port) as (app, client):
            put = await client.put(
                PREFS,
                json={"email": "digest", "digest_interval_minutes": 15},
                headers=auth.keys.headers(ann),
            )
            assert put.status_code == 200, put.text
            for key in ("DEMO-1", "DEMO-2", "DEMO-3"):
                await app.state.use_cases.handle_event(
                    assigned(actor_id=carl, assignee_id=ann, key=key)
                )
            db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
            try:
                queued = await db.fetchval(
                    "SELECT count(*) FROM notifications.mails WHERE status = 'queued'"
                )
                assert queued == 3
                # Fifteen minutes later, without the wait.
                await db.execute(
                    "UPDATE notifications.mails SET created_at = created_at - interval '16 min'"
                )
            finally:
                await db.close()
            (digest,) = await arrived(smtp, 1)
    assert digest["Subject"] == "[Bugtracker] 3 notifications"
    body = digest.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert all(key in content for key in ("DEMO-1", "DEMO-2", "DEMO-3"))


async def test_the_mail_is_written_in_the_events_transaction(
    infra: Stack, auth: Auth, smtp_port: int, assigned: Callable[..., Any]
) -> None:
    ann, carl = auth.add("ann"), auth.add("carl")
    async with mailing_app(infra, auth, smtp_port) as (app, _):
        event = assigned(actor_id=carl, assignee_id=ann)
        db = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:
            async with injected_fault(db, fault_on("INSERT", "notifications.mails")) as fault:
                with pytest.raises(Exception, match="injected fault"):
                    await app.state.use_cases.handle_event(event)
                assert await fault.fired() == 1
            for table in ("notifications", "inbox", "mails"):
                count = await db.fetchval(f"SELECT count(*) FROM notifications.{table}")  # noqa: S608
                assert count == 0, table
            await app.state.use_cases.handle_event(event)  # the broker's redelivery
            assert await db.fetchval("SELECT count(*) FROM notifications.mails") == 1
        finally:
            await db.close()
