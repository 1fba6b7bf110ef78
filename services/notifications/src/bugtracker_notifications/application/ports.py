"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bugtracker_shared.ports import Transaction

from bugtracker_notifications.domain.mail import Mail, MailContent
from bugtracker_notifications.domain.notifications import Notification
from bugtracker_notifications.domain.preferences import Preferences


@dataclass(frozen=True, slots=True)
class Keyset:
    """A position in a user's list, newest first: rows strictly after it come next."""

    created_at: datetime
    id: uuid.UUID


class NotificationRepository(Protocol):
    async def add_many(self, notifications: Sequence[Notification]) -> None:
        """Insert; a notification for an (event, user), or for a (user, group_key) with a
        group_key, that exists already (committed, or being inserted by a concurrent unit
        of work that then commits) is skipped. Those inserted reach the `NotificationFeed`
        of every replica if, and once, the unit of work commits (never when it rolls
        back)."""
        ...

    async def list_for_user(
        self, user_id: uuid.UUID, *, unread_only: bool, after: Keyset | None, limit: int
    ) -> list[Notification]:
        """The user's notifications, newest first (created_at, id descending)."""
        ...

    async def count_unread(self, user_id: uuid.UUID) -> int: ...

    async def mark_read(
        self, user_id: uuid.UUID, notification_id: uuid.UUID, at: datetime
    ) -> Notification | None:
        """Mark one of the user's notifications read (keeping an earlier `read_at`);
        None when the user has no such notification."""
        ...

    async def mark_all_read(self, user_id: uuid.UUID, at: datetime) -> int: ...


class Inbox(Protocol):
    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        """Record the event as applied in this unit of work; False if it was already."""
        ...

    async def advance(self, subject: str, sequence: int) -> bool:
        """Record `sequence` as the subject's last applied one in this unit of work;
        False when a newer event of the subject was applied already (this one is stale)."""
        ...


class Subscription(Protocol):
    """New notifications of one user, as they are committed, until closed."""

    def __aiter__(self) -> AsyncIterator[Notification]: ...
    def close(self) -> None: ...


class NotificationFeed(Protocol):
    """The users' open streams on this replica: each receives the notifications of its
    user that any replica's unit of work adds (`NotificationRepository.add_many`) and
    commits while it is open. A stream the feed cannot keep complete (its user fell
    behind, or the feed lost its source) is closed: the client lists what it missed."""

    def subscribe(self, user_id: uuid.UUID) -> Subscription: ...


class FormerMembers(Protocol):
    """Who has left which project, as the project.member_* events tell it."""

    async def left(self, project_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> None: ...
    async def returned(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None: ...
    async def among(self, project_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `user_ids` who have left the project."""
        ...


class PreferencesRepository(Protocol):
    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> Preferences:
        """The user's preferences (the defaults, version 0, when none were saved);
        `for_update` locks a saved row until the unit of work ends."""
        ...

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        """Each user's preferences (the defaults for those without a row)."""
        ...

    async def save(self, preferences: Preferences) -> None: ...


@dataclass(frozen=True, slots=True)
class DueDigest:
    user_id: uuid.UUID
    interval_minutes: int


class MailRepository(Protocol):
    async def add_many(self, mails: Sequence[Mail]) -> None:
        """Insert; a mail of an (event, user) that exists already is skipped."""
        ...

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Mail]:
        """Pending mails that are due and not leased, leased until `lease_until`."""
        ...

    async def save_attempt(self, mail: Mail) -> None:
        """Store the attempt's outcome and release the lease."""
        ...

    async def due_digests(self, now: datetime) -> list[DueDigest]:
        """Users with queued mails whose digest is due: an interval after their last
        digest (or after their oldest queued mail)."""
        ...

    async def take_queued(self, user_id: uuid.UUID) -> list[Mail]:
        """The user's queued mails, oldest first, locked (another replica's digest job
        skips them); empty when another holds them."""
        ...

    async def mark_digested(self, mail_ids: Sequence[uuid.UUID], digest_id: uuid.UUID) -> None: ...

    async def digest_items(self, digest_id: uuid.UUID) -> list[Mail]:
        """The mails a digest carries, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class UserInfo:
    email: str
    display_name: str
    is_active: bool


class UserDirectory(Protocol):
    async def lookup(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserInfo]:
        """The users that exist among `user_ids` (raises when auth cannot answer)."""
        ...


class Mailer(Protocol):
    async def send(self, content: MailContent) -> None:
        """Render and send one message; `MailDeferredError` when the server is away or
        answers "later", `MailRefusedError` when it refuses the message for good."""
        ...


class UnsubscribeLinks(Protocol):
    def url_for(self, user_id: uuid.UUID, notification_type: str) -> str: ...
    def read(self, token: str) -> tuple[uuid.UUID, str]:
        """The (user, type) a link was made for; `InvalidUnsubscribeLinkError` when it is
        tampered with, expired or malformed."""
        ...


class UnitOfWork(Transaction, Protocol):
    notifications: NotificationRepository
    inbox: Inbox
    former_members: FormerMembers
    preferences: PreferencesRepository
    mails: MailRepository
