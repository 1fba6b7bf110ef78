"""Preferences and mails in PostgreSQL (schema `notifications`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bugtracker_shared.rows import Columns
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_notifications.application.ports import DueDigest
from bugtracker_notifications.domain.mail import Mail, MailKind, MailStatus
from bugtracker_notifications.domain.preferences import Channels, EmailMode, Preferences
from bugtracker_notifications.infrastructure.tables import mails, preferences

_p = preferences
_m = mails

MAILS = Columns(
    Mail,
    mails,
    load={"kind": MailKind, "status": MailStatus},
    unmapped=("leased_until",),
)
_mail = MAILS.from_row
_ATTEMPT = MAILS.only("status", "attempts", "next_attempt_at", "sent_at", "error")


def _events_of(stored: dict[str, Any]) -> dict[str, Channels]:
    return {
        name: Channels(in_app=bool(value["in_app"]), email=bool(value["email"]))
        for name, value in stored.items()
    }


def _preferences_of(row: Any) -> Preferences:
    return Preferences(
        user_id=row["user_id"],
        email=EmailMode(row["email"]),
        digest_interval_minutes=row["digest_interval_minutes"],
        events=_events_of(row["events"]),
        updated_at=row["updated_at"],
        version=row["version"],
        last_digest_at=row["last_digest_at"],
    )


class SqlPreferencesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> Preferences:
        query = select(_p).where(_p.c.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return _preferences_of(row) if row is not None else Preferences(user_id=user_id)

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        found: dict[uuid.UUID, Preferences] = {u: Preferences(user_id=u) for u in user_ids}
        if not user_ids:
            return found
        rows = await self._session.execute(select(_p).where(_p.c.user_id.in_(user_ids)))
        for row in rows.mappings():
            found[row["user_id"]] = _preferences_of(row)
        return found

    async def save(self, saved: Preferences) -> None:
        values = {
            "email": saved.email.value,
            "digest_interval_minutes": saved.digest_interval_minutes,
            "events": {
                name: {"in_app": c.in_app, "email": c.email} for name, c in saved.events.items()
            },
            "updated_at": saved.updated_at,
            "version": saved.version,
            "last_digest_at": saved.last_digest_at,
        }
        statement = insert(_p).values(user_id=saved.user_id, **values)
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=[_p.c.user_id], set_=values)
        )


class SqlMailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, items: Sequence[Mail]) -> None:
        if not items:
            return
        # Skips a mail of an (event, user) or a (user, bulk change) recorded before.
        await self._session.execute(
            insert(_m).values([MAILS.values(m) for m in items]).on_conflict_do_nothing()
        )

    async def claim_due(self, now: datetime, *, lease_until: datetime, limit: int) -> list[Mail]:
        due = (
            select(_m.c.id)
            .where(
                _m.c.status == MailStatus.PENDING.value,
                _m.c.next_attempt_at <= now,
                (_m.c.leased_until.is_(None)) | (_m.c.leased_until < now),
            )
            .order_by(_m.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        rows = await self._session.execute(
            update(_m)
            .where(_m.c.id.in_(due))
            .values(leased_until=lease_until)
            .returning(*MAILS.columns)
        )
        return sorted((_mail(row) for row in rows.mappings()), key=lambda m: m.created_at)

    async def save_attempt(self, mail: Mail) -> None:
        await self._session.execute(
            update(_m).where(_m.c.id == mail.id).values(**_ATTEMPT.values(mail), leased_until=None)
        )

    async def due_digests(self, now: datetime) -> list[DueDigest]:
        oldest = func.min(_m.c.created_at)
        since = func.coalesce(_p.c.last_digest_at, oldest)
        interval = func.make_interval(0, 0, 0, 0, 0, _p.c.digest_interval_minutes)
        rows = await self._session.execute(
            select(_m.c.user_id, _p.c.digest_interval_minutes)
            .join(_p, _p.c.user_id == _m.c.user_id)
            .where(_m.c.status == MailStatus.QUEUED.value)
            .group_by(_m.c.user_id, _p.c.digest_interval_minutes, _p.c.last_digest_at)
            .having(since + interval <= now)
        )
        return [
            DueDigest(user_id=r.user_id, interval_minutes=r.digest_interval_minutes) for r in rows
        ]

    async def take_queued(self, user_id: uuid.UUID) -> list[Mail]:
        rows = await self._session.execute(
            select(*MAILS.columns)
            .where(_m.c.user_id == user_id, _m.c.status == MailStatus.QUEUED.value)
            .order_by(_m.c.created_at, _m.c.id)
            .with_for_update(skip_locked=True)
        )
        return [_mail(row) for row in rows.mappings()]

    async def mark_digested(self, mail_ids: Sequence[uuid.UUID], digest_id: uuid.UUID) -> None:
        await self._session.execute(
            update(_m)
            .where(_m.c.id.in_(mail_ids))
            .values(status=MailStatus.DIGESTED.value, digest_id=digest_id)
        )

    async def digest_items(self, digest_id: uuid.UUID) -> list[Mail]:
        rows = await self._session.execute(
            select(*MAILS.columns)
            .where(_m.c.digest_id == digest_id)
            .order_by(_m.c.created_at, _m.c.id)
        )
        return [_mail(row) for row in rows.mappings()]
