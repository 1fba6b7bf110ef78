"""E-mail notifications on fakes: which notifications become mails, sending (skips,
retries, failures, the same Message-ID), digests, preferences and unsubscribing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from bugtracker_notifications.application.mail import (
    DigestJob,
    MailSender,
    MailSettings,
    PreferencesUseCases,
    plan_mails,
)
from bugtracker_notifications.application.ports import UserInfo
from bugtracker_notifications.domain.errors import (
    InvalidPreferencesError,
    InvalidUnsubscribeLinkError,
    MailDeferredError,
    MailRefusedError,
)
from bugtracker_notifications.domain.mail import (
    EVERY_TYPE,
    Mail,
    MailContent,
    MailKind,
    MailStatus,
)
from bugtracker_notifications.domain.notifications import NotificationDraft
from bugtracker_notifications.domain.preferences import Channels, EmailMode, Preferences

from services.notifications.tests.unit.fakes import Clock, FakeNotificationsDatabase

ANN, BOB, ACTOR = (uuid.UUID(int=n) for n in (1, 2, 3))
PROJECT, TICKET = uuid.UUID(int=10), uuid.UUID(int=11)
SETTINGS = MailSettings(public_url="https://bt.example.com", domain="bt.example.com")


def draft(user: uuid.UUID, type_: str = "ticket.assigned", **extra: object) -> NotificationDraft:
    values: dict[str, object] = {
        "user_id": user,
        "type": type_,
        "summary": "You were assigned DEMO-1: Crash on save",
        "project_id": PROJECT,
        "ticket_id": TICKET,
        "ticket_key": "DEMO-1",
        "title": "Crash on save",
    }
    return NotificationDraft(**(values | extra))  # type: ignore[arg-type]


@dataclass
class FakeMailer:
    """Raises the scripted errors in turn, then sends."""

    script: list[Exception] = field(default_factory=list)
    sent: list[MailContent] = field(default_factory=list)

    async def send(self, content: MailContent) -> None:
        if self.script:
            raise self.script.pop(0)
        self.sent.append(content)


@dataclass
class FakeUsers:
    users: dict[uuid.UUID, UserInfo] = field(default_factory=dict)
    away: bool = False

    async def lookup(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserInfo]:
        if self.away:
            raise ConnectionError("auth is away")
        return {u: self.users[u] for u in user_ids if u in self.users}


class FakeLinks:
    def url_for(self, user_id: uuid.UUID, notification_type: str) -> str:
        return f"https://bt.example.com/unsub?u={user_id}&t={notification_type}"

    def read(self, token: str) -> tuple[uuid.UUID, str]:
        user, _, type_ = token.partition("|")
        try:
            return uuid.UUID(user), type_
        except ValueError as exc:
            raise InvalidUnsubscribeLinkError("bad") from exc


@dataclass
class MailWorld:
    database: FakeNotificationsDatabase = field(default_factory=FakeNotificationsDatabase)
    clock: Clock = field(default_factory=Clock)
    mailer: FakeMailer = field(default_factory=FakeMailer)
    users: FakeUsers = field(
        default_factory=lambda: FakeUsers(
            {
                ANN: UserInfo("ann@example.com", "Ann Lee", is_active=True),
                BOB: UserInfo("bob@example.com", "Bob Roe", is_active=True),
                ACTOR: UserInfo("carl@example.com", "Carl Poe", is_active=True),
            }
        )
    )

    def __post_init__(self) -> None:
        self.sender = MailSender(
            uow=self.database.unit_of_work,
            users=self.users,
            mailer=self.mailer,
            links=FakeLinks(),
            settings=SETTINGS,
            clock=self.clock,
        )
        self.digests = DigestJob(
            uow=self.database.unit_of_work, settings=SETTINGS, clock=self.clock
        )
        self.preferences = PreferencesUseCases(
            uow=self.database.unit_of_work, links=FakeLinks(), clock=self.clock
        )

    async def record(self, *drafts: NotificationDraft) -> None:
        async with self.database.unit_of_work() as uow:
            wanted = await uow.preferences.get_many([d.user_id for d in drafts])
            mails = plan_mails(
                drafts, wanted, event_id=uuid.uuid4(), actor_id=ACTOR, now=self.clock()
            )
            await uow.mails.add_many(mails)
            await uow.commit()

    def mails(self) -> list[Mail]:
        return list(self.database.state.mails.values())


@pytest.fixture
def mail() -> MailWorld:
    return MailWorld()


async def test_a_notification_becomes_a_mail_with_subject_thread_and_unsubscribe(
    mail: MailWorld,
) -> None:
    await mail.record(draft(ANN))
    assert await mail.sender.send_due() == 1
    (sent,) = mail.mailer.sent
    (row,) = mail.mails()
    assert sent.to_address == "ann@example.com"
    assert sent.subject == "[DEMO-1] Crash on save"
    assert "Carl Poe" in sent.summary  # who did it
    assert sent.message_id == f"<{row.id}@bt.example.com>"
    assert sent.thread_id == f"<ticket-{TICKET}@bt.example.com>"
    assert sent.ticket_url == "https://bt.example.com/api/v1/tickets/DEMO-1"
    assert sent.unsubscribe_url is not None
    assert "t=ticket.assigned" in sent.unsubscribe_url
    assert (row.status, row.attempts) == (MailStatus.SENT, 1)


async def test_preferences_decide_in_which_mode_each_type_goes(mail: MailWorld) -> None:
    mail.database.state.preferences[ANN] = Preferences(
        user_id=ANN,
        email=EmailMode.DIGEST,
        events={"ticket.commented": Channels(in_app=True, email=False)},
    )
    mail.database.state.preferences[BOB] = Preferences(user_id=BOB, email=EmailMode.OFF)
    await mail.record(draft(ANN), draft(ANN, "ticket.commented", ticket_key="DEMO-2"), draft(BOB))
    assert [(m.user_id, m.status) for m in mail.mails()] == [(ANN, MailStatus.QUEUED)]
    assert await mail.sender.send_due() == 0


async def test_a_redelivered_event_or_a_bulk_change_mails_once(mail: MailWorld) -> None:
    bulk = uuid.uuid4()
    async with mail.database.unit_of_work() as uow:
        event_id = uuid.uuid4()
        for _ in range(2):
            await uow.mails.add_many(
                plan_mails([draft(ANN)], {}, event_id=event_id, actor_id=None, now=mail.clock())
            )
        for _ in range(3):  # three events of one bulk change
            await uow.mails.add_many(
                plan_mails(
                    [draft(BOB, group_key=bulk)],
                    {},
                    event_id=uuid.uuid4(),
                    actor_id=None,
                    now=mail.clock(),
                )
            )
        await uow.commit()
    assert sorted(m.user_id for m in mail.mails()) == [ANN, BOB]


async def test_a_deactivated_or_departed_recipient_gets_nothing(mail: MailWorld) -> None:
    mail.users.users[ANN] = UserInfo("ann@example.com", "Ann Lee", is_active=False)
    mail.database.state.former_members[PROJECT, BOB] = mail.clock()
    await mail.record(draft(ANN), draft(BOB))
    await mail.sender.send_due()
    assert mail.mailer.sent == []
    assert {(m.user_id, m.status) for m in mail.mails()} == {
        (ANN, MailStatus.SKIPPED),
        (BOB, MailStatus.SKIPPED),
    }


async def test_a_server_away_is_retried_with_backoff_and_the_same_message_id(
    mail: MailWorld,
) -> None:
    mail.mailer.script = [MailDeferredError("connection refused")] * 3
    await mail.record(draft(ANN))
    waits = []
    for _ in range(3):
        await mail.sender.send_due()
        (row,) = mail.mails()
        assert row.status is MailStatus.PENDING
        waits.append((row.next_attempt_at - mail.clock()).total_seconds())
        assert await mail.sender.send_due() == 0  # not yet due
        mail.clock.now = row.next_attempt_at
    await mail.sender.send_due()
    assert waits == [5.0, 10.0, 20.0]
    (row,) = mail.mails()
    assert (row.status, row.attempts) == (MailStatus.SENT, 4)
    assert len(mail.mailer.sent) == 1


async def test_a_refusal_fails_the_mail_and_so_does_a_day_of_deferrals(mail: MailWorld) -> None:
    mail.mailer.script = [MailRefusedError("550 no such user")]
    await mail.record(draft(ANN))
    await mail.sender.send_due()
    assert mail.mails()[0].status is MailStatus.FAILED
    mail.mailer.script = [MailDeferredError("away")]
    await mail.record(draft(BOB))
    mail.clock.advance(timedelta(days=1, seconds=1))
    mail.database.state.mails[mail.mails()[1].id].next_attempt_at = mail.clock()
    await mail.sender.send_due()
    assert mail.mails()[1].status is MailStatus.FAILED


async def test_auth_away_defers_the_batch(mail: MailWorld) -> None:
    mail.users.away = True
    await mail.record(draft(ANN))
    await mail.sender.send_due()
    (row,) = mail.mails()
    assert (row.status, row.error) == (MailStatus.PENDING, "the user directory is unavailable")


async def test_a_digest_carries_the_queued_mails_once_an_interval_has_passed(
    mail: MailWorld,
) -> None:
    mail.database.state.preferences[ANN] = Preferences(
        user_id=ANN, email=EmailMode.DIGEST, digest_interval_minutes=30
    )
    await mail.record(draft(ANN))
    mail.clock.advance(timedelta(minutes=10))
    await mail.record(draft(ANN, "ticket.commented", summary="New comment on DEMO-1"))
    assert await mail.digests.make_due_digests() == 0
    mail.clock.advance(timedelta(minutes=21))
    assert await mail.digests.make_due_digests() == 1
    assert await mail.digests.make_due_digests() == 0  # made once
    await mail.sender.send_due()
    (digest,) = mail.mailer.sent
    assert [item.summary for item in digest.items] == [
        "You were assigned DEMO-1: Crash on save",
        "New comment on DEMO-1",
    ]
    assert digest.subject == "[Bugtracker] 2 notifications"
    assert digest.unsubscribe_url is not None
    assert f"t={EVERY_TYPE}" in digest.unsubscribe_url
    kinds = sorted((m.kind, m.status) for m in mail.mails())
    assert kinds == [
        (MailKind.DIGEST, MailStatus.SENT),
        (MailKind.NOTIFICATION, MailStatus.DIGESTED),
        (MailKind.NOTIFICATION, MailStatus.DIGESTED),
    ]
    # The next digest waits an interval after this one.
    await mail.record(draft(ANN, summary="Later"))
    mail.clock.advance(timedelta(minutes=29))
    assert await mail.digests.make_due_digests() == 0
    mail.clock.advance(timedelta(minutes=2))
    assert await mail.digests.make_due_digests() == 1


async def test_preferences_default_replace_and_refuse_unknown_types(mail: MailWorld) -> None:
    shown = await mail.preferences.get(ANN)
    assert (shown.email, shown.version) == (EmailMode.IMMEDIATE, 0)
    assert all(c == Channels() for c in shown.complete_events().values())
    saved = await mail.preferences.replace(
        ANN,
        email=EmailMode.DIGEST,
        digest_interval_minutes=15,
        events={"ticket.commented": Channels(in_app=False, email=True)},
        expected_version=0,
    )
    assert (saved.version, saved.wants_in_app("ticket.commented")) == (1, False)
    before = mail.database.snapshot()
    with pytest.raises(InvalidPreferencesError):
        await mail.preferences.replace(
            ANN,
            email=EmailMode.OFF,
            digest_interval_minutes=15,
            events={"ticket.nope": Channels()},
            expected_version=None,
        )
    assert mail.database.state == before


async def test_unsubscribe_turns_off_email_for_one_type_or_all(mail: MailWorld) -> None:
    after = await mail.preferences.unsubscribe(f"{ANN}|ticket.commented")
    assert after.email_mode_for("ticket.commented") is EmailMode.OFF
    assert after.email_mode_for("ticket.assigned") is EmailMode.IMMEDIATE
    assert after.wants_in_app("ticket.commented")
    again = await mail.preferences.unsubscribe(f"{ANN}|ticket.commented")
    assert again.email_mode_for("ticket.commented") is EmailMode.OFF
    everything = await mail.preferences.unsubscribe(f"{ANN}|{EVERY_TYPE}")
    assert everything.email is EmailMode.OFF
    with pytest.raises(InvalidUnsubscribeLinkError):
        await mail.preferences.unsubscribe("garbage")
