"""In-memory fakes of the notifications service's ports (tests only).

`FakeNotificationsDatabase` is the committed state: notifications, the inbox (applied
event ids and each subject's last sequence) and who left which project. A
`FakeUnitOfWork` works on a private copy of it taken when its block is entered; `commit`
makes the copy the database's state, and leaving the block without it discards every
change (`bugtracker_testkit.in_memory`, the core every service's fakes share).
`FakeNotificationFeed` hands out `FakeSubscription`s and records what reaches the live
streams: as in PostgreSQL (a NOTIFY sent by `add_many` is delivered on commit), each
`add_many` batch of a unit of work that commits, and nothing of one that rolls back;
`Clock` is a clock the test moves.

`NotificationsWorld` wires the real `NotificationUseCases` to them (the `world` fixture of
`tests/unit/conftest.py`). `_conforms` assigns each fake to its Protocol, so `mypy` (the
module is in its `files`) reports a fake that drifts from its port.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bugtracker_notifications.application.ports import (
    DueDigest,
    FormerMembers,
    Inbox,
    Keyset,
    MailRepository,
    NotificationFeed,
    NotificationRepository,
    PreferencesRepository,
    Subscription,
    UnitOfWork,
)
from bugtracker_notifications.application.use_cases import NotificationUseCases
from bugtracker_notifications.domain.mail import Mail, MailStatus
from bugtracker_notifications.domain.notifications import Notification
from bugtracker_notifications.domain.preferences import Preferences
from bugtracker_testkit.in_memory import InMemoryDatabase, InMemoryUnitOfWork


@dataclass
class NotificationsState:
    """Everything the notifications schema holds, as plain Python values."""

    notifications: dict[uuid.UUID, Notification] = field(default_factory=dict)
    inbox: dict[uuid.UUID, str] = field(default_factory=dict)  # event id -> type
    sequences: dict[str, int] = field(default_factory=dict)  # subject -> last applied
    former_members: dict[tuple[uuid.UUID, uuid.UUID], datetime] = field(default_factory=dict)
    # The transaction's `add_many` batches (what was inserted), announced on commit.
    announced: list[list[Notification]] = field(default_factory=list)
    preferences: dict[uuid.UUID, Preferences] = field(default_factory=dict)
    mails: dict[uuid.UUID, Mail] = field(default_factory=dict)  # in insertion order
    leases: dict[uuid.UUID, datetime] = field(default_factory=dict)


class FakeNotificationsDatabase(InMemoryDatabase[NotificationsState]):
    def __init__(self) -> None:
        super().__init__(NotificationsState())
        # Told of each committed transaction's announced batches (the feed's listener).
        self.listeners: list[Callable[[list[Notification]], None]] = []

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def of(self, user_id: uuid.UUID) -> list[Notification]:
        """The user's committed notifications, oldest first."""
        return sorted(
            (n for n in self.state.notifications.values() if n.user_id == user_id),
            key=lambda n: (n.created_at, n.id),
        )


class FakeNotificationRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _rows(self) -> dict[uuid.UUID, Notification]:
        return self._uow.state.notifications

    async def add_many(self, notifications: Sequence[Notification]) -> None:
        inserted: list[Notification] = []
        for notification in notifications:
            # The unique (event_id, user_id) index and the partial one on (user_id,
            # group_key) where group_key is set, ON CONFLICT DO NOTHING.
            if any(
                (n.event_id, n.user_id) == (notification.event_id, notification.user_id)
                or (
                    notification.group_key is not None
                    and (n.user_id, n.group_key) == (notification.user_id, notification.group_key)
                )
                for n in self._rows.values()
            ):
                continue
            self._rows[notification.id] = notification
            inserted.append(notification)
        # pg_notify of each inserted row, in the transaction.
        self._uow.state.announced.append(inserted)

    async def list_for_user(
        self, user_id: uuid.UUID, *, unread_only: bool, after: Keyset | None, limit: int
    ) -> list[Notification]:
        found = sorted(
            (
                n
                for n in self._rows.values()
                if n.user_id == user_id
                and not (unread_only and n.is_read)
                and (after is None or (n.created_at, n.id) < (after.created_at, after.id))
            ),
            key=lambda n: (n.created_at, n.id),
            reverse=True,
        )
        return found[:limit]

    async def count_unread(self, user_id: uuid.UUID) -> int:
        return sum(n.user_id == user_id and not n.is_read for n in self._rows.values())

    async def mark_read(
        self, user_id: uuid.UUID, notification_id: uuid.UUID, at: datetime
    ) -> Notification | None:
        found = self._rows.get(notification_id)
        if found is None or found.user_id != user_id:
            return None
        if found.read_at is None:
            found = dataclasses.replace(found, read_at=at)
            self._rows[notification_id] = found
        return found

    async def mark_all_read(self, user_id: uuid.UUID, at: datetime) -> int:
        unread = [n for n in self._rows.values() if n.user_id == user_id and not n.is_read]
        for notification in unread:
            self._rows[notification.id] = dataclasses.replace(notification, read_at=at)
        return len(unread)


class FakeInbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        inbox = self._uow.state.inbox
        if event_id in inbox:
            return False
        inbox[event_id] = event_type
        return True

    async def advance(self, subject: str, sequence: int) -> bool:
        sequences = self._uow.state.sequences
        if sequences.get(subject, sequence) > sequence:  # equal sequences pass
            return False
        sequences[subject] = sequence
        return True


class FakeFormerMembers:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def left(self, project_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> None:
        self._uow.state.former_members[project_id, user_id] = at

    async def returned(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self._uow.state.former_members.pop((project_id, user_id), None)

    async def among(self, project_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {u for u in user_ids if (project_id, u) in self._uow.state.former_members}


class FakePreferencesRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> Preferences:
        found = self._uow.state.preferences.get(user_id)
        return copy.deepcopy(found) if found is not None else Preferences(user_id=user_id)

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        return {u: await self.get(u) for u in user_ids}

    async def save(self, preferences: Preferences) -> None:
        self._uow.state.preferences[preferences.user_id] = copy.deepcopy(preferences)


class FakeMailRepository:
    """The SQL's rules: unique (event, user) and (user, group); due, unleased pending
    mails claimed; queued mails of users whose interval has passed."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _rows(self) -> dict[uuid.UUID, Mail]:
        return self._uow.state.mails

    async def add_many(self, mails: Sequence[Mail]) -> None:
        for mail in mails:
            clash = any(
                (
                    mail.event_id is not None
                    and (m.event_id, m.user_id) == (mail.event_id, mail.user_id)
                )
                or (
                    mail.group_key is not None
                    and (m.user_id, m.group_key) == (mail.user_id, mail.group_key)
                )
                for m in self._rows.values()
            )
            if not clash:
                self._rows[mail.id] = copy.deepcopy(mail)

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Mail]:
        leases = self._uow.state.leases
        due = [
            m
            for m in self._rows.values()
            if m.status is MailStatus.PENDING
            and m.next_attempt_at is not None
            and m.next_attempt_at <= now
            and (m.id not in leases or leases[m.id] < now)
        ][:limit]
        for mail in due:
            leases[mail.id] = lease_until
        return copy.deepcopy(due)

    async def save_attempt(self, mail: Mail) -> None:
        self._rows[mail.id] = copy.deepcopy(mail)
        self._uow.state.leases.pop(mail.id, None)

    async def due_digests(self, now: datetime) -> list[DueDigest]:
        due: list[DueDigest] = []
        for user_id, preferences in self._uow.state.preferences.items():
            queued = [
                m
                for m in self._rows.values()
                if m.user_id == user_id and m.status is MailStatus.QUEUED
            ]
            if not queued:
                continue
            since = preferences.last_digest_at or min(m.created_at for m in queued)
            interval = timedelta(minutes=preferences.digest_interval_minutes)
            if since + interval <= now:
                due.append(DueDigest(user_id, preferences.digest_interval_minutes))
        return due

    async def take_queued(self, user_id: uuid.UUID) -> list[Mail]:
        return copy.deepcopy(
            [
                m
                for m in self._rows.values()
                if m.user_id == user_id and m.status is MailStatus.QUEUED
            ]
        )

    async def mark_digested(self, mail_ids: Sequence[uuid.UUID], digest_id: uuid.UUID) -> None:
        for mail_id in mail_ids:
            self._rows[mail_id].status = MailStatus.DIGESTED
            self._rows[mail_id].digest_id = digest_id

    async def digest_items(self, digest_id: uuid.UUID) -> list[Mail]:
        return copy.deepcopy([m for m in self._rows.values() if m.digest_id == digest_id])


class FakeUnitOfWork(InMemoryUnitOfWork[NotificationsState]):
    """One transaction on a `FakeNotificationsDatabase`."""

    notifications: NotificationRepository
    inbox: Inbox
    former_members: FormerMembers
    preferences: PreferencesRepository
    mails: MailRepository

    def __init__(self, database: FakeNotificationsDatabase) -> None:
        super().__init__(database)
        self._listeners = database.listeners
        self.notifications = FakeNotificationRepository(self)
        self.inbox = FakeInbox(self)
        self.former_members = FakeFormerMembers(self)
        self.preferences = FakePreferencesRepository(self)
        self.mails = FakeMailRepository(self)

    async def commit(self) -> None:
        announced, self.state.announced = self.state.announced, []
        await super().commit()
        # PostgreSQL delivers a transaction's NOTIFYs when, and only if, it commits.
        for batch in announced:
            for listener in self._listeners:
                listener(batch)


class FakeSubscription:
    """The notifications published for one user while it was open."""

    def __init__(self, user_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.received: list[Notification] = []
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[Notification]:
        for notification in list(self.received):
            yield notification

    def close(self) -> None:
        self.closed = True


class FakeNotificationFeed:
    """Records each committed batch (`published`); open subscriptions receive their
    user's notifications."""

    def __init__(self) -> None:
        self.published: list[list[Notification]] = []
        self.subscriptions: list[FakeSubscription] = []

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """What the listener hears of one committed `add_many`."""
        self.published.append(list(notifications))
        for subscription in self.subscriptions:
            if not subscription.closed:
                subscription.received += [
                    n for n in notifications if n.user_id == subscription.user_id
                ]

    def subscribe(self, user_id: uuid.UUID) -> FakeSubscription:
        subscription = FakeSubscription(user_id)
        self.subscriptions.append(subscription)
        return subscription


class Clock:
    """The use cases' clock: starts at a fixed instant and moves only when told."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta = timedelta(seconds=1)) -> datetime:
        self.now += by
        return self.now


@dataclass
class NotificationsWorld:
    """The real NotificationUseCases on the fakes."""

    database: FakeNotificationsDatabase = field(default_factory=FakeNotificationsDatabase)
    feed: FakeNotificationFeed = field(default_factory=FakeNotificationFeed)
    clock: Clock = field(default_factory=Clock)
    notifications: NotificationUseCases = field(init=False)

    def __post_init__(self) -> None:
        self.database.listeners.append(self.feed.deliver)
        self.notifications = NotificationUseCases(
            uow=self.database.unit_of_work, feed=self.feed, clock=self.clock
        )


def _conforms(database: FakeNotificationsDatabase) -> None:
    """Never called: mypy checks that each fake satisfies the Protocol it plays."""
    uow: UnitOfWork = FakeUnitOfWork(database)
    make_uow: Callable[[], UnitOfWork] = database.unit_of_work
    fake = FakeUnitOfWork(database)
    repositories: tuple[NotificationRepository, Inbox, FormerMembers] = (
        FakeNotificationRepository(fake),
        FakeInbox(fake),
        FakeFormerMembers(fake),
    )
    feed: NotificationFeed = FakeNotificationFeed()
    subscription: Subscription = FakeSubscription(uuid.uuid4())
    clock: Callable[[], datetime] = Clock()
    del uow, make_uow, repositories, feed, subscription, clock
