"""E-mail notifications: which notifications become mails, sending them, digests and the
preferences that decide it (docs/api.md, "E-mail notifications and preferences").

- **Planning** (`plan_mails`, called by the event handler in its transaction): a mail row
  per notification whose recipient wants e-mail for its type: `pending` for immediate
  e-mail, `queued` for the next digest. A redelivered event adds nothing (the inbox, and
  a unique index on (event, user)).
- **Sending** (`MailSender`): claims due mails under a lease, asks auth who the recipients
  and actors are, skips a deactivated recipient or one who has left the mail's project
  (checked when sending, not when planning), sends, and records the outcome. The server
  away or answering "later": retried with exponential backoff for up to a day; refused for
  good: failed. A crash between sending and recording resends once the lease runs out,
  with the same Message-ID (made from the mail's id).
- **Digests** (`DigestJob`): a user whose queued mails are an interval old (since the last
  digest, or the oldest queued mail) gets one digest mail carrying them. The user's
  preferences row is locked while it is made (`SKIP LOCKED`), so one replica makes it.
- **Preferences** (`PreferencesUseCases`): read, replace, and one-click unsubscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bugtracker_shared.etags import check_version

from bugtracker_notifications.application.ports import (
    Mailer,
    UnitOfWork,
    UnsubscribeLinks,
    UserDirectory,
    UserInfo,
)
from bugtracker_notifications.domain.errors import (
    InvalidPreferencesError,
    MailDeferredError,
    MailRefusedError,
)
from bugtracker_notifications.domain.mail import (
    EVERY_TYPE,
    DigestItem,
    Mail,
    MailContent,
    MailKind,
    MailStatus,
    message_id,
    thread_id,
)
from bugtracker_notifications.domain.notifications import NotificationDraft
from bugtracker_notifications.domain.preferences import (
    MAX_DIGEST_MINUTES,
    MIN_DIGEST_MINUTES,
    NOTIFICATION_TYPES,
    Channels,
    EmailMode,
    Preferences,
)

logger = logging.getLogger("bugtracker.notifications.mail")

SUBJECT_MAX_CHARS = 150
ERROR_BACKOFF_SECONDS = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def plan_mails(
    drafts: Sequence[NotificationDraft],
    preferences: dict[uuid.UUID, Preferences],
    *,
    event_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> list[Mail]:
    """The mails of one event's notifications, as their recipients want them."""
    mails: list[Mail] = []
    for draft in drafts:
        wanted = preferences.get(draft.user_id) or Preferences(user_id=draft.user_id)
        mode = wanted.email_mode_for(draft.type)
        if mode is EmailMode.OFF:
            continue
        immediate = mode is EmailMode.IMMEDIATE
        mails.append(
            Mail(
                id=uuid.uuid4(),
                user_id=draft.user_id,
                kind=MailKind.NOTIFICATION,
                status=MailStatus.PENDING if immediate else MailStatus.QUEUED,
                notification_type=draft.type,
                event_id=event_id,
                actor_id=actor_id,
                project_id=draft.project_id,
                ticket_id=draft.ticket_id,
                ticket_key=draft.ticket_key,
                title=draft.title,
                summary=draft.summary,
                created_at=now,
                next_attempt_at=now if immediate else None,
                group_key=draft.group_key,
            )
        )
    return mails


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class MailSettings:
    public_url: str
    domain: str  # of Message-IDs
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 1.0
    batch: int = 10
    first_retry_seconds: float = 5.0
    max_retry_seconds: float = 600.0
    give_up_after: timedelta = timedelta(days=1)
    digest_poll_seconds: float = 30.0


@dataclass
class MailSender:
    uow: Callable[[], UnitOfWork]
    users: UserDirectory
    mailer: Mailer
    links: UnsubscribeLinks
    settings: MailSettings
    clock: Callable[[], datetime] = field(default=utc_now)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Send due mails until cancelled; sleeps until woken or polled."""
        while True:
            self._wakeup.clear()
            try:
                sent = await self.send_due()
            except Exception:
                logger.exception("sending mails failed; retrying")
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                continue
            if sent == self.settings.batch:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_seconds):
                    await self._wakeup.wait()

    async def send_due(self) -> int:
        """One batch: claimed, sent at once, recorded. How many were claimed."""
        now = self.clock()
        async with self.uow() as uow:
            claimed = await uow.mails.claim_due(
                now, lease_until=now + self.settings.lease, limit=self.settings.batch
            )
            await uow.commit()
        if not claimed:
            return 0
        try:
            people = await self.users.lookup(
                list({m.user_id for m in claimed} | {m.actor_id for m in claimed if m.actor_id})
            )
        except Exception:
            logger.warning("auth cannot say who %d mail(s) go to; retried", len(claimed))
            for mail in claimed:
                await self._record(mail, deferred="the user directory is unavailable")
            return len(claimed)
        await asyncio.gather(*(self._send_one(mail, people) for mail in claimed))
        return len(claimed)

    async def _send_one(self, mail: Mail, people: dict[uuid.UUID, UserInfo]) -> None:
        try:
            content = await self._content(mail, people)
            if isinstance(content, str):
                await self._record(mail, skipped=content)
                return
            await self.mailer.send(content)
        except MailDeferredError as exc:
            await self._record(mail, deferred=str(exc))
        except MailRefusedError as exc:
            await self._record(mail, refused=str(exc))
        except Exception:
            # The lease runs out and the mail is tried again.
            logger.exception("mail %s could not be sent or recorded", mail.id)
        else:
            await self._record(mail)

    async def _content(self, mail: Mail, people: dict[uuid.UUID, UserInfo]) -> MailContent | str:
        """What to send, or why nothing is sent (the mail is skipped)."""
        recipient = people.get(mail.user_id)
        if recipient is None or not recipient.is_active:
            return "the user is deactivated"
        actor = people.get(mail.actor_id) if mail.actor_id else None
        if mail.kind is MailKind.DIGEST:
            return await self._digest_content(mail, recipient)
        if mail.project_id is not None and await self._left(mail.user_id, [mail.project_id]):
            return "the user has left the project"
        subject = (
            f"[{mail.ticket_key}] {mail.title}" if mail.ticket_key and mail.title else mail.summary
        )
        summary = mail.summary + (f" (by {actor.display_name})" if actor else "")
        return MailContent(
            to_address=recipient.email,
            to_name=recipient.display_name,
            subject=_shorten(subject, SUBJECT_MAX_CHARS),
            summary=summary,
            message_id=message_id(mail.id, self.settings.domain),
            actor_name=actor.display_name if actor else None,
            ticket_key=mail.ticket_key,
            title=mail.title,
            ticket_url=self._ticket_url(mail.ticket_key),
            thread_id=thread_id(mail.ticket_id, self.settings.domain) if mail.ticket_id else None,
            unsubscribe_url=self.links.url_for(mail.user_id, mail.notification_type or EVERY_TYPE),
            notification_type=mail.notification_type,
        )

    async def _digest_content(self, mail: Mail, recipient: UserInfo) -> MailContent | str:
        async with self.uow() as uow:
            items = await uow.mails.digest_items(mail.id)
            projects = {i.project_id for i in items if i.project_id is not None}
            gone = {
                project
                for project in projects
                if await uow.former_members.among(project, [mail.user_id])
            }
        kept = [i for i in items if i.project_id not in gone]
        if not kept:
            return "the user has left the projects of every notification"
        return MailContent(
            to_address=recipient.email,
            to_name=recipient.display_name,
            subject=f"[Bugtracker] {len(kept)} notification{'s' if len(kept) > 1 else ''}",
            summary=f"{len(kept)} notification{'s' if len(kept) > 1 else ''} since the last digest",
            message_id=message_id(mail.id, self.settings.domain),
            unsubscribe_url=self.links.url_for(mail.user_id, EVERY_TYPE),
            items=[
                DigestItem(
                    summary=i.summary,
                    ticket_key=i.ticket_key,
                    title=i.title,
                    ticket_url=self._ticket_url(i.ticket_key),
                    actor_name=None,
                    at=i.created_at,
                )
                for i in kept
            ],
        )

    def _ticket_url(self, ticket_key: str | None) -> str | None:
        if ticket_key is None:
            return None
        return f"{self.settings.public_url.rstrip('/')}/api/v1/tickets/{ticket_key}"

    async def _left(self, user_id: uuid.UUID, projects: Sequence[uuid.UUID]) -> bool:
        async with self.uow() as uow:
            for project in projects:
                if await uow.former_members.among(project, [user_id]):
                    return True
        return False

    async def _record(
        self,
        mail: Mail,
        *,
        skipped: str | None = None,
        deferred: str | None = None,
        refused: str | None = None,
    ) -> None:
        now = self.clock()
        mail.attempts += 1
        mail.error = skipped or deferred or refused
        mail.next_attempt_at = None
        if skipped is not None:
            mail.status = MailStatus.SKIPPED
        elif refused is not None:
            mail.status = MailStatus.FAILED
        elif deferred is not None:
            if now - mail.created_at >= self.settings.give_up_after:
                mail.status = MailStatus.FAILED
            else:
                delay = min(
                    self.settings.first_retry_seconds * 2 ** (mail.attempts - 1),
                    self.settings.max_retry_seconds,
                )
                mail.next_attempt_at = now + timedelta(seconds=delay)
        else:
            mail.status = MailStatus.SENT
            mail.sent_at = now
        async with self.uow() as uow:
            await uow.mails.save_attempt(mail)
            await uow.commit()


@dataclass
class DigestJob:
    uow: Callable[[], UnitOfWork]
    settings: MailSettings
    wake_sender: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = field(default=utc_now)

    async def run(self) -> None:
        """Make the due digests every `digest_poll_seconds`, until cancelled. Its state is
        the database's (queued mails, each user's last digest): a restart loses nothing."""
        while True:
            try:
                await self.make_due_digests()
            except Exception:
                logger.exception("making digests failed; retrying")
            await asyncio.sleep(self.settings.digest_poll_seconds)

    async def make_due_digests(self) -> int:
        now = self.clock()
        async with self.uow() as uow:
            due = await uow.mails.due_digests(now)
        made = 0
        for digest in due:
            made += await self._make(digest.user_id, now)
        if made:
            self.wake_sender()
        return made

    async def _make(self, user_id: uuid.UUID, now: datetime) -> int:
        async with self.uow() as uow:
            preferences = await uow.preferences.get(user_id, for_update=True)
            queued = await uow.mails.take_queued(user_id)
            if not queued:
                return 0  # another replica is making it, or made it
            digest = Mail(
                id=uuid.uuid4(),
                user_id=user_id,
                kind=MailKind.DIGEST,
                status=MailStatus.PENDING,
                notification_type=None,
                event_id=None,
                actor_id=None,
                project_id=None,
                ticket_id=None,
                ticket_key=None,
                title=None,
                summary=f"{len(queued)} notifications",
                created_at=now,
                next_attempt_at=now,
            )
            await uow.mails.add_many([digest])
            await uow.mails.mark_digested([m.id for m in queued], digest.id)
            preferences.last_digest_at = now
            await uow.preferences.save(preferences)
            await uow.commit()
        return 1


@dataclass
class PreferencesUseCases:
    uow: Callable[[], UnitOfWork]
    links: UnsubscribeLinks
    clock: Callable[[], datetime] = field(default=utc_now)

    async def get(self, user_id: uuid.UUID) -> Preferences:
        async with self.uow() as uow:
            return await uow.preferences.get(user_id)

    async def replace(
        self,
        user_id: uuid.UUID,
        *,
        email: EmailMode,
        digest_interval_minutes: int,
        events: dict[str, Channels],
        expected_version: int | None,
    ) -> Preferences:
        unknown = sorted(set(events) - set(NOTIFICATION_TYPES))
        if unknown:
            raise InvalidPreferencesError(
                f"No notification type is named {', '.join(unknown)}; "
                f"the types are {', '.join(NOTIFICATION_TYPES)}."
            )
        if not MIN_DIGEST_MINUTES <= digest_interval_minutes <= MAX_DIGEST_MINUTES:
            raise InvalidPreferencesError("digest_interval_minutes is out of range")
        async with self.uow() as uow:
            preferences = await uow.preferences.get(user_id, for_update=True)
            check_version(preferences.version, expected_version)
            preferences.email = email
            preferences.digest_interval_minutes = digest_interval_minutes
            preferences.events = dict(events)
            preferences.updated_at = self.clock()
            preferences.version += 1
            await uow.preferences.save(preferences)
            await uow.commit()
        return preferences

    async def unsubscribe(self, token: str) -> Preferences:
        """RFC 8058 one-click: e-mail off for the link's notification type (for a digest's
        link, e-mail off altogether). Idempotent."""
        user_id, notification_type = self.links.read(token)
        async with self.uow() as uow:
            preferences = await uow.preferences.get(user_id, for_update=True)
            if notification_type == EVERY_TYPE:
                preferences.email = EmailMode.OFF
            else:
                channels = preferences.channels(notification_type)
                preferences.events[notification_type] = Channels(
                    in_app=channels.in_app, email=False
                )
            preferences.updated_at = self.clock()
            preferences.version += 1
            await uow.preferences.save(preferences)
            await uow.commit()
        return preferences
