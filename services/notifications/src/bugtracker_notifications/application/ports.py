"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bugtracker_shared.ports import Transaction

from bugtracker_notifications.domain.notifications import Notification


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


class UnitOfWork(Transaction, Protocol):
    notifications: NotificationRepository
    inbox: Inbox
    former_members: FormerMembers
