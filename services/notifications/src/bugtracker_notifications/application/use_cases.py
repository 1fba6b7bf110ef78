"""Notification use cases. Each one owns a unit of work and commits it at most once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bugtracker_shared.event_schemas import ProjectMemberAdded, ProjectMemberRemoved
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.pagination import (
    InvalidCursorError,
    Listing,
    decode_time_id_cursor,
    time_id_key,
)

from bugtracker_notifications.application.mail import plan_mails
from bugtracker_notifications.application.ports import (
    Keyset,
    NotificationFeed,
    Subscription,
    UnitOfWork,
)
from bugtracker_notifications.domain.errors import NotificationNotFoundError
from bugtracker_notifications.domain.notifications import (
    RULES,
    EventFacts,
    Notification,
    NotificationDraft,
    event_facts,
    parse_optional_uuid,
    plan_notifications,
)
from bugtracker_notifications.domain.preferences import Preferences

logger = logging.getLogger("bugtracker.notifications")


def utc_now() -> datetime:
    return datetime.now(UTC)


def keyset_of(cursor: str) -> Keyset:
    created_at, id_ = decode_time_id_cursor(cursor)
    if created_at.tzinfo is None:
        raise InvalidCursorError("The cursor is not valid.")
    return Keyset(created_at=created_at, id=id_)


def _event_name(event: CloudEvent) -> str | None:
    try:
        return event.name
    except ValueError:
        return None


@dataclass
class NotificationUseCases:
    uow: Callable[[], UnitOfWork]
    feed: NotificationFeed
    clock: Callable[[], datetime] = field(default=utc_now)
    # E-mail is on when the deployment has a mail server (BUGTRACKER_SMTP_HOST).
    mail_enabled: bool = False
    wake_mail: Callable[[], None] = lambda: None

    async def handle_event(self, event: CloudEvent) -> None:
        """Turn one delivered event into notifications, exactly once per event id; an event
        older than one already applied for its subject is dropped."""
        name = _event_name(event)
        if name is None or name not in RULES:
            logger.info("ignoring event %s of type %s", event.id, event.type)
            return
        async with self.uow() as uow:
            if not await uow.inbox.advance(event.subject, event.sequence):
                logger.info(
                    "event %s (%s, sequence %d) is older than what was applied; dropped",
                    event.id,
                    event.type,
                    event.sequence,
                )
                return
            if not await uow.inbox.claim(event.id, event.type):
                logger.info("event %s was handled already; skipped", event.id)
                return
            # Parsed once, into the model of the event's contract (the consumer checked
            # it already); the rules get the typed object.
            facts = event_facts(
                event.id, name, parse_optional_uuid(event.actorid, "actorid"), event.data
            )
            now = self.clock()
            drafts = await self._for_members(uow, facts, plan_notifications(facts), now)
            wanted = await uow.preferences.get_many(list({d.user_id for d in drafts}))
            mails = (
                plan_mails(drafts, wanted, event_id=event.id, actor_id=facts.actor_id, now=now)
                if self.mail_enabled
                else []
            )
            drafts = [
                d
                for d in drafts
                if (wanted.get(d.user_id) or Preferences(user_id=d.user_id)).wants_in_app(d.type)
            ]
            created = [
                Notification(
                    id=uuid.uuid4(),
                    user_id=draft.user_id,
                    type=draft.type,
                    event_id=event.id,
                    actor_id=facts.actor_id,
                    project_id=draft.project_id,
                    ticket_id=draft.ticket_id,
                    ticket_key=draft.ticket_key,
                    summary=draft.summary,
                    created_at=now,
                    group_key=draft.group_key,
                )
                for draft in drafts
            ]
            # Reach the open streams (of every replica) once committed. A user who has a
            # notification of the draft's group (another event of the same bulk change,
            # handled first, by any replica) gets none: the insert skips it.
            await uow.notifications.add_many(created)
            # The e-mails in the same transaction: a mail exists if, and only if, its
            # event was handled.
            await uow.mails.add_many(mails)
            await uow.commit()
        if mails:
            self.wake_mail()

    @staticmethod
    async def _for_members(
        uow: UnitOfWork, facts: EventFacts, drafts: list[NotificationDraft], now: datetime
    ) -> list[NotificationDraft]:
        """Keeps the list of who left which project, and drops the drafts of users who
        have left the draft's project (an ex-member learns nothing more of it)."""
        if isinstance(facts.data, ProjectMemberRemoved):
            await uow.former_members.left(facts.data.project_id, facts.data.user_id, now)
        elif isinstance(facts.data, ProjectMemberAdded):
            await uow.former_members.returned(facts.data.project_id, facts.data.user_id)
        kept: list[NotificationDraft] = []
        by_project: dict[uuid.UUID, list[NotificationDraft]] = {}
        for draft in drafts:
            if draft.project_id is None:
                kept.append(draft)
            else:
                by_project.setdefault(draft.project_id, []).append(draft)
        for project_id, of_project in by_project.items():
            gone = await uow.former_members.among(project_id, [d.user_id for d in of_project])
            kept += [draft for draft in of_project if draft.user_id not in gone]
        return kept

    def subscribe(self, user_id: uuid.UUID) -> Subscription:
        """The user's new notifications from now on (for the live stream)."""
        return self.feed.subscribe(user_id)

    async def list_notifications(
        self, user_id: uuid.UUID, *, unread_only: bool, limit: int, cursor: str | None
    ) -> Listing[Notification]:
        """One page, newest first; `cursor` is the `next_cursor` of the page before."""
        after = keyset_of(cursor) if cursor is not None else None
        async with self.uow() as uow:
            rows = await uow.notifications.list_for_user(
                user_id, unread_only=unread_only, after=after, limit=limit + 1
            )
        return Listing.from_overfetch(rows, limit, lambda n: time_id_key(n.created_at, n.id))

    async def unread_count(self, user_id: uuid.UUID) -> int:
        async with self.uow() as uow:
            return await uow.notifications.count_unread(user_id)

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
        async with self.uow() as uow:
            notification = await uow.notifications.mark_read(user_id, notification_id, self.clock())
            if notification is None:
                raise NotificationNotFoundError
            await uow.commit()
        return notification

    async def mark_all_read(self, user_id: uuid.UUID) -> None:
        async with self.uow() as uow:
            await uow.notifications.mark_all_read(user_id, self.clock())
            await uow.commit()
