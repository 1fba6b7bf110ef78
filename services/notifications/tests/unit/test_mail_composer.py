"""The composer renders what `MailContent` says into the message mail clients and
servers act on: both parts, the threading and list headers, escaped HTML, and no way for
user text (names, titles) to add headers or recipients."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

import pytest
from bugtracker_notifications.domain.mail import DigestItem, MailContent
from bugtracker_notifications.infrastructure.mail_composer import (
    MailComposer,
    header_value,
    mail_domain,
    message_id_for,
    thread_id_for,
)

SENDER = "Bugtracker <noreply@bugs.example>"
PUBLIC_URL = "https://bugs.example/"
UNSUBSCRIBE = "https://bugs.example/api/v1/notifications/unsubscribe?token=abc.def-ghi"
TICKET_URL = "https://bugs.example/api/v1/tickets/DEMO-1"


def content(**overrides: object) -> MailContent:
    values: dict[str, object] = {
        "to_address": "ann@example.com",
        "to_name": "Ann Lée",
        "subject": "[DEMO-1] Crash on save",
        "summary": "Bob Stone assigned DEMO-1 to you",
        "message_id": "<11111111-1111-1111-1111-111111111111@bugs.example>",
        "actor_name": "Bob Stone",
        "ticket_key": "DEMO-1",
        "title": "Crash on save",
        "ticket_url": TICKET_URL,
        "thread_id": "<ticket-22222222-2222-2222-2222-222222222222@bugs.example>",
        "unsubscribe_url": UNSUBSCRIBE,
        "notification_type": "ticket.assigned",
    }
    values.update(overrides)
    return MailContent(**values)  # type: ignore[arg-type]


def roundtrip(message: EmailMessage) -> EmailMessage:
    """The message as a receiving client reads it: the bytes sent, parsed back."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


@pytest.fixture
def composer() -> MailComposer:
    return MailComposer(sender=SENDER, public_url=PUBLIC_URL)


def test_a_notification_is_multipart_alternative_text_then_html(composer: MailComposer) -> None:
    message = roundtrip(composer.compose(content()))

    assert message.get_content_type() == "multipart/alternative"
    subtypes = [part.get_content_type() for part in message.iter_parts()]
    assert subtypes == ["text/plain", "text/html"]
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"


def test_the_headers_read_back_as_given(composer: MailComposer) -> None:
    mail = content()
    message = roundtrip(composer.compose(mail))

    assert message["From"] == SENDER
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Ann Lée", "ann@example.com")
    assert message["Subject"] == "[DEMO-1] Crash on save"
    assert message["Message-ID"] == mail.message_id
    assert message["In-Reply-To"] == mail.thread_id
    assert message["References"] == mail.thread_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    # The long URL is folded onto its own line; unfolded, the value is just `<url>`.
    assert message["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Date"].datetime.tzinfo is not None
    assert abs((datetime.now(UTC) - message["Date"].datetime).total_seconds()) < 60


def test_the_wire_form_uses_crlf_line_endings(composer: MailComposer) -> None:
    raw = composer.compose(content()).as_bytes()

    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_without_a_thread_or_unsubscribe_url_those_headers_are_absent(
    composer: MailComposer,
) -> None:
    message = roundtrip(composer.compose(content(thread_id=None, unsubscribe_url=None)))

    for name in ("In-Reply-To", "References", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert name not in message
    text, html = parts(message)
    assert "unsubscribe" not in text.lower()
    assert "unsubscribe" not in html.lower()


def test_both_parts_show_the_summary_ticket_link_and_footer(composer: MailComposer) -> None:
    text, html = parts(roundtrip(composer.compose(content(summary="Bob assigned\nit to you"))))

    for part in (text, html):
        assert "Bob assigned" in part
        assert "it to you" in part
        assert "DEMO-1" in part
        assert "Crash on save" in part
        assert "You get this because" in part
        assert "ticket.assigned" in part
        assert "https://bugs.example/api/v1/users/me/notification-preferences" in part
    assert TICKET_URL in text
    assert f"unsubscribe: {UNSUBSCRIBE}" in text
    assert f'href="{TICKET_URL}"' in html
    assert f'href="{UNSUBSCRIBE}"' in html
    assert "<" not in text.replace(f"<{TICKET_URL}>", "")


def test_user_text_is_escaped_in_html_and_left_alone_in_text(composer: MailComposer) -> None:
    title = '<script>alert("x")</script> & <b>bold</b>'
    text, html = parts(
        roundtrip(composer.compose(content(title=title, summary="<img src=x onerror=y>")))
    )

    assert "<script>" not in html
    assert "<img" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=y&gt;" in html
    assert title in text
    assert "<img src=x onerror=y>" in text


def test_a_url_that_is_not_http_is_never_a_link(composer: MailComposer) -> None:
    _, html = parts(roundtrip(composer.compose(content(ticket_url="javascript:alert(1)"))))

    assert "javascript:" not in html


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\u2028", "\x85", "\x0b"])
def test_line_breaks_in_names_and_subjects_cannot_inject_headers(
    composer: MailComposer, breaker: str
) -> None:
    mail = content(
        to_name=f"Ann{breaker}Bcc: victim@evil.example",
        subject=f"[DEMO-1] Crash{breaker}Bcc: victim@evil.example{breaker}{breaker}body",
    )
    message = composer.compose(mail)
    raw = message.as_bytes()
    parsed = roundtrip(message)

    assert "Bcc" not in parsed
    assert b"\r\nBcc:" not in raw
    assert parsed["Subject"] == "[DEMO-1] Crash Bcc: victim@evil.example body"
    [to] = parsed["To"].addresses
    assert to.addr_spec == "ann@example.com"
    assert to.display_name == "Ann Bcc: victim@evil.example"


@pytest.mark.parametrize(
    "address",
    ["ann@example.com, eve@evil.example", "ann@example.com\r\nBcc: eve@evil.example", "nobody"],
)
def test_an_address_that_is_not_exactly_one_address_is_refused(
    composer: MailComposer, address: str
) -> None:
    with pytest.raises(ValueError, match="not a single e-mail address"):
        composer.compose(content(to_address=address))


def test_a_digest_lists_one_line_per_item(composer: MailComposer) -> None:
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    items = [
        DigestItem(
            "Bob assigned DEMO-1 to you", "DEMO-1", "Crash <on> save", TICKET_URL, "Bob", at
        ),
        DigestItem("Cy mentioned\nyou", "DEMO-2", "Slow", None, "Cy", at),
        DigestItem("Dee added you to DEMO", None, None, None, "Dee", at),
    ]
    mail = content(
        subject="[Bugtracker] 3 notifications",
        summary="3 notifications since your last digest",
        ticket_key=None,
        title=None,
        ticket_url=None,
        thread_id=None,
        notification_type=None,
        items=items,
    )
    message = roundtrip(composer.compose(mail))
    text, html = parts(message)

    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines == [
        f"- 2026-03-01 09:30 UTC DEMO-1 Crash <on> save: Bob assigned DEMO-1 to you <{TICKET_URL}>",
        "- 2026-03-01 09:30 UTC DEMO-2 Slow: Cy mentioned you",
        "- 2026-03-01 09:30 UTC Dee added you to DEMO",
    ]
    assert "3 notifications since your last digest" in text
    footer = text.splitlines()[text.splitlines().index("-- ") + 1]
    assert footer.startswith("You get this because your notification preferences gather")
    assert footer.endswith(f"unsubscribe: {UNSUBSCRIBE}")
    assert html.count("<li") == 3
    assert "Crash &lt;on&gt; save" in html
    assert f'href="{TICKET_URL}"' in html
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "In-Reply-To" not in message


def test_message_and_thread_ids_are_stable_and_well_formed() -> None:
    mail_id = uuid.UUID("11111111-1111-1111-1111-111111111111")
    ticket_id = uuid.UUID("22222222-2222-2222-2222-222222222222")

    assert message_id_for(mail_id, "bugs.example") == f"<{mail_id}@bugs.example>"
    assert message_id_for(mail_id, "bugs.example") == message_id_for(mail_id, "bugs.example")
    assert thread_id_for(ticket_id, "bugs.example") == f"<ticket-{ticket_id}@bugs.example>"


@pytest.mark.parametrize(
    ("sender", "public_url", "expected"),
    [
        ("Bugtracker <noreply@Mail.Example>", "https://bugs.example", "mail.example"),
        ("noreply@mail.example", "https://bugs.example", "mail.example"),
        ("", "https://bugs.example:8443/base", "bugs.example"),
        ("Bugtracker", "http://localhost:8000", "localhost"),
        ("", "", "localhost"),
    ],
)
def test_mail_domain_prefers_the_sender_then_the_public_host(
    sender: str, public_url: str, expected: str
) -> None:
    assert mail_domain(sender, public_url) == expected


def test_header_value_keeps_one_line() -> None:
    assert header_value("  a\r\n\tb\x00c \u2029 d ") == "a bc d"
