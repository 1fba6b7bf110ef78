"""`SmtpMailer` against a real SMTP server (aiosmtpd, on a free local port, started by
the test): a composed message arrives intact, and each kind of failure comes out as the
error that decides the mail's fate: transient (retry later) or permanent (failed)."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from bugtracker_notifications.domain.errors import MailDeferredError, MailRefusedError
from bugtracker_notifications.domain.mail import MailContent
from bugtracker_notifications.infrastructure.mail_composer import MailComposer
from bugtracker_notifications.infrastructure.smtp import (
    PermanentMailError,
    SmtpMailer,
    SmtpSettings,
    TransientMailError,
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
REFUSED = "gone@example.com"  # RCPT answered 550
LATER = "busy@example.com"  # RCPT answered 450
DATA_DEFERRED = "greylisted@example.com"  # DATA answered 451
DATA_REFUSED = "toobig@example.com"  # DATA answered 552


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Collecting:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.sessions: list[int] = []  # one aiosmtpd Session per connection

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        if address == LATER:
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if DATA_DEFERRED in envelope.rcpt_tos:
            return "451 4.7.1 Greylisted, come back later"
        if DATA_REFUSED in envelope.rcpt_tos:
            return "552 5.3.4 Message too big"
        self.envelopes.append(envelope)
        self.sessions.append(id(session))
        return "250 Message accepted"


@pytest.fixture
def handler() -> Collecting:
    return Collecting()


@pytest.fixture
def server(handler: Collecting) -> Iterator[SmtpSettings]:
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        yield SmtpSettings(
            host=HOST, port=port, username=None, password=None, starttls=False, timeout_seconds=5
        )
    finally:
        controller.stop()


@pytest.fixture
async def silent_server() -> AsyncIterator[SmtpSettings]:
    """Accepts connections and never says a word: the client must time out."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    listener = await asyncio.start_server(accept, HOST, 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield SmtpSettings(
            host=HOST, port=port, username=None, password=None, starttls=False, timeout_seconds=0.3
        )
    finally:
        for writer in held:
            writer.close()
        listener.close()
        await listener.wait_closed()


def message_to(address: str) -> EmailMessage:
    composer = MailComposer(
        sender="Bugtracker <noreply@bugs.example>", public_url="https://bugs.example"
    )
    return composer.compose(
        MailContent(
            to_address=address,
            to_name="Ann Lée",
            subject="[DEMO-1] Crash on <save>",
            summary="Bob Stone assigned DEMO-1 to you",
            message_id="<11111111-1111-1111-1111-111111111111@bugs.example>",
            ticket_key="DEMO-1",
            title="Crash on <save>",
            ticket_url="https://bugs.example/api/v1/tickets/DEMO-1",
            thread_id="<ticket-22222222-2222-2222-2222-222222222222@bugs.example>",
            unsubscribe_url="https://bugs.example/api/v1/notifications/unsubscribe?token=t",
            notification_type="ticket.assigned",
        )
    )


async def test_a_message_arrives_intact(server: SmtpSettings, handler: Collecting) -> None:
    await SmtpMailer(server).send(message_to("ann@example.com"))

    [envelope] = handler.envelopes
    assert envelope.mail_from == "noreply@bugs.example"
    assert envelope.rcpt_tos == ["ann@example.com"]
    assert isinstance(envelope.content, bytes)
    received = email.message_from_bytes(envelope.content, policy=default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == "[DEMO-1] Crash on <save>"
    assert received["To"].addresses[0].display_name == "Ann Lée"
    assert received["Message-ID"] == "<11111111-1111-1111-1111-111111111111@bugs.example>"
    assert received["In-Reply-To"] == "<ticket-22222222-2222-2222-2222-222222222222@bugs.example>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["Auto-Submitted"] == "auto-generated"
    assert [part.get_content_type() for part in received.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    html = received.get_body(("html",))
    assert html is not None
    assert "Crash on &lt;save&gt;" in html.get_content()


async def test_each_send_is_its_own_connection(server: SmtpSettings, handler: Collecting) -> None:
    mailer = SmtpMailer(server)
    for _ in range(3):
        await mailer.send(message_to("ann@example.com"))

    assert len(handler.envelopes) == 3
    assert len(set(handler.sessions)) == 3


async def test_a_refused_recipient_is_permanent(server: SmtpSettings, handler: Collecting) -> None:
    with pytest.raises(PermanentMailError, match="550") as caught:
        await SmtpMailer(server).send(message_to(REFUSED))

    assert isinstance(caught.value, MailRefusedError)
    assert "\n" not in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert handler.envelopes == []


async def test_a_recipient_deferred_with_4xx_is_transient(server: SmtpSettings) -> None:
    with pytest.raises(TransientMailError, match="450") as caught:
        await SmtpMailer(server).send(message_to(LATER))

    assert isinstance(caught.value, MailDeferredError)


async def test_data_answered_4xx_is_transient_and_5xx_permanent(server: SmtpSettings) -> None:
    with pytest.raises(TransientMailError, match="451"):
        await SmtpMailer(server).send(message_to(DATA_DEFERRED))
    with pytest.raises(PermanentMailError, match="552"):
        await SmtpMailer(server).send(message_to(DATA_REFUSED))


async def test_a_closed_port_is_transient() -> None:
    settings = SmtpSettings(
        host=HOST, port=free_port(), username=None, password=None, starttls=False
    )

    with pytest.raises(TransientMailError, match="cannot connect") as caught:
        await SmtpMailer(settings).send(message_to("ann@example.com"))

    assert "\n" not in str(caught.value)


async def test_a_server_that_never_answers_is_transient(silent_server: SmtpSettings) -> None:
    with pytest.raises(TransientMailError):
        await asyncio.wait_for(SmtpMailer(silent_server).send(message_to("ann@example.com")), 5)


async def test_credentials_the_server_cannot_take_are_transient(server: SmtpSettings) -> None:
    """A setup problem (here: AUTH not offered without TLS) is not this message's fault:
    retried, the mail goes out once the configuration is fixed."""
    settings = replace(server, username="bugtracker", password="secret")

    with pytest.raises(TransientMailError):
        await SmtpMailer(settings).send(message_to("ann@example.com"))


async def test_starttls_required_but_not_offered_is_transient(server: SmtpSettings) -> None:
    settings = replace(server, starttls=True)

    with pytest.raises(TransientMailError):
        await SmtpMailer(settings).send(message_to("ann@example.com"))


def test_the_password_is_not_in_the_settings_repr() -> None:
    settings = SmtpSettings(
        host=HOST, port=25, username="u", password="hunter2-secret", starttls=True
    )

    assert "hunter2-secret" not in repr(settings)
