"""What an e-mail says, independent of how it is rendered and sent: one per notification
(or one digest of several), addressed to a user, threaded per ticket."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MailStatus(StrEnum):
    QUEUED = "queued"  # waits for the user's next digest
    PENDING = "pending"  # to be sent (again, after a failure, at next_attempt_at)
    SENT = "sent"
    DIGESTED = "digested"  # went out inside a digest mail
    SKIPPED = "skipped"  # not sent: the user was deactivated or left the project
    FAILED = "failed"  # the server refused it for good, or kept failing for too long


class MailKind(StrEnum):
    NOTIFICATION = "notification"
    DIGEST = "digest"


@dataclass
class Mail:
    """A mail row: one notification's e-mail (or a digest), sent at least once and, when
    sent again after a crash, with the same `message_id`."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: MailKind
    status: MailStatus
    notification_type: str | None
    event_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    project_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    ticket_key: str | None
    title: str | None
    summary: str
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    error: str | None = None
    digest_id: uuid.UUID | None = None
    group_key: uuid.UUID | None = None


@dataclass(frozen=True)
class DigestItem:
    """One notification inside a digest."""

    summary: str
    ticket_key: str | None
    title: str | None
    ticket_url: str | None
    actor_name: str | None
    at: datetime


@dataclass(frozen=True)
class MailContent:
    """Everything a rendered message needs (`infrastructure/mail_composer.py`)."""

    to_address: str
    to_name: str
    subject: str
    # The change in one or two lines ("Ann Lee assigned DEMO-3 to you").
    summary: str
    message_id: str  # "<...@domain>", the same on every attempt
    actor_name: str | None = None
    ticket_key: str | None = None
    title: str | None = None
    ticket_url: str | None = None
    # The ticket's thread ("<ticket-<id>@domain>"): In-Reply-To and References.
    thread_id: str | None = None
    # RFC 8058: the one-click URL (List-Unsubscribe, with List-Unsubscribe-Post).
    unsubscribe_url: str | None = None
    notification_type: str | None = None
    items: list[DigestItem] = field(default_factory=list)  # a digest's notifications


def message_id(mail_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of a mail: made from its id, so every attempt sends the same one."""
    return f"<{mail_id}@{domain}>"


def thread_id(ticket_id: uuid.UUID, domain: str) -> str:
    """The id every mail about a ticket replies to (In-Reply-To, References): mail
    clients show them as one thread."""
    return f"<ticket-{ticket_id}@{domain}>"


# The unsubscribe link of a digest turns e-mail off altogether (it speaks for many types).
EVERY_TYPE = "*"
