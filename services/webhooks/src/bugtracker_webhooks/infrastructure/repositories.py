"""The webhooks service's repositories (PostgreSQL, schema `webhooks`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bugtracker_shared.inbox import claim_event
from bugtracker_shared.rows import Columns
from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_webhooks.application.ports import DueDelivery, Keyset
from bugtracker_webhooks.domain.webhooks import Delivery, DeliveryStatus, Webhook
from bugtracker_webhooks.infrastructure.secret_box import SecretBox
from bugtracker_webhooks.infrastructure.tables import deliveries, inbox, webhooks

_w = webhooks
_d = deliveries

DELIVERIES = Columns(
    Delivery,
    deliveries,
    load={"status": DeliveryStatus},
    unmapped=("position", "leased_until"),
)
_delivery = DELIVERIES.from_row
_ATTEMPT = DELIVERIES.only(
    "status", "attempt", "next_attempt_at", "response_status", "duration_ms", "error", "updated_at"
)
# The log reads everything but the payload.
_LISTED = [c for c in DELIVERIES.columns if c.name != "payload"]


def _claim_statement() -> Select[Any]:
    """Due pending deliveries of active webhooks, not leased, held back by no earlier
    pending delivery of the same webhook and ordering key; leased in the same statement
    and returned with their webhook's URL and secrets. Built once (the dispatcher runs it
    after every send): `now`, `lease_until` and `limit` are bound per call."""
    now = bindparam("now", type_=DateTime(timezone=True))
    earlier = _d.alias("earlier")
    held_back = exists().where(
        earlier.c.webhook_id == _d.c.webhook_id,
        earlier.c.ordering_key == _d.c.ordering_key,
        earlier.c.status == DeliveryStatus.PENDING.value,
        tuple_(earlier.c.sequence, earlier.c.position) < tuple_(_d.c.sequence, _d.c.position),
    )
    due = (
        select(_d.c.id)
        .join(_w, and_(_w.c.id == _d.c.webhook_id, _w.c.active))
        .where(
            _d.c.status == DeliveryStatus.PENDING.value,
            _d.c.next_attempt_at <= now,
            (_d.c.leased_until.is_(None)) | (_d.c.leased_until < now),
            ~held_back,
        )
        .order_by(_d.c.next_attempt_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(of=_d, skip_locked=True)
        .cte("due")
    )
    claimed = (
        update(_d)
        .where(_d.c.id.in_(select(due.c.id)))
        .values(leased_until=bindparam("lease_until", type_=DateTime(timezone=True)))
        .returning(*DELIVERIES.columns)
        .cte("claimed")
    )
    return (
        select(claimed, _w.c.url, _w.c.secret, _w.c.previous_secret)
        .add_columns(_w.c.previous_secret_expires_at)
        .join(_w, _w.c.id == claimed.c.webhook_id)
        .order_by(claimed.c.sequence)
    )


_CLAIM = _claim_statement()


class SqlWebhookRepository:
    """Secrets are encrypted in the row; the entity holds them in clear."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self._session = session
        self._box = box

    def _values(self, webhook: Webhook) -> dict[str, Any]:
        context = webhook.id.bytes
        previous = webhook.previous_secret
        return {
            "id": webhook.id,
            "project_id": webhook.project_id,
            "url": webhook.url,
            "events": webhook.events,
            "description": webhook.description,
            "active": webhook.active,
            "secret": self._box.encrypt(webhook.secret, context=context),
            "previous_secret": (
                self._box.encrypt(previous, context=context) if previous is not None else None
            ),
            "previous_secret_expires_at": webhook.previous_secret_expires_at,
            "failing_since": webhook.failing_since,
            "disabled_at": webhook.disabled_at,
            "created_by": webhook.created_by,
            "created_at": webhook.created_at,
            "updated_at": webhook.updated_at,
            "version": webhook.version,
        }

    def _webhook(self, row: RowMapping) -> Webhook:
        context = row["id"].bytes
        previous = row["previous_secret"]
        return Webhook(
            id=row["id"],
            project_id=row["project_id"],
            url=row["url"],
            events=list(row["events"]),
            description=row["description"],
            active=row["active"],
            secret=self._box.decrypt(row["secret"], context=context),
            previous_secret=(
                self._box.decrypt(previous, context=context) if previous is not None else None
            ),
            previous_secret_expires_at=row["previous_secret_expires_at"],
            failing_since=row["failing_since"],
            disabled_at=row["disabled_at"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            version=row["version"],
        )

    async def add(self, webhook: Webhook) -> None:
        await self._session.execute(insert(_w).values(self._values(webhook)))

    async def get(self, webhook_id: uuid.UUID, *, for_update: bool = False) -> Webhook | None:
        query = select(_w).where(_w.c.id == webhook_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return self._webhook(row) if row is not None else None

    async def save(self, webhook: Webhook) -> None:
        values = self._values(webhook)
        del values["id"]
        await self._session.execute(update(_w).where(_w.c.id == webhook.id).values(values))

    async def delete(self, webhook_id: uuid.UUID) -> None:
        await self._session.execute(delete(_w).where(_w.c.id == webhook_id))

    async def count_for_project(self, project_id: uuid.UUID) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(_w).where(_w.c.project_id == project_id)
        )
        return int(count or 0)

    async def list_for_project(
        self, project_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Webhook]:
        query = select(_w).where(_w.c.project_id == project_id)
        if after is not None:
            query = query.where(
                tuple_(_w.c.created_at, _w.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(_w.c.created_at.desc(), _w.c.id.desc()).limit(limit)
        rows = (await self._session.execute(query)).mappings().all()
        return [self._webhook(row) for row in rows]

    async def active_for_project(self, project_id: uuid.UUID) -> list[Webhook]:
        query = select(_w).where(_w.c.project_id == project_id, _w.c.active)
        rows = (await self._session.execute(query)).mappings().all()
        return [self._webhook(row) for row in rows]

    async def clear_failing(self, webhook_id: uuid.UUID) -> None:
        await self._session.execute(
            update(_w)
            .where(_w.c.id == webhook_id, _w.c.failing_since.is_not(None))
            .values(failing_since=None)
        )


class SqlDeliveryRepository:
    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self._session = session
        self._box = box

    async def add_many(self, items: Sequence[Delivery]) -> None:
        if not items:
            return
        # The partial unique index (webhook, event) skips an event recorded before.
        await self._session.execute(
            insert(_d).values([DELIVERIES.values(d) for d in items]).on_conflict_do_nothing()
        )

    async def get(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery | None:
        row = (
            (
                await self._session.execute(
                    select(*DELIVERIES.columns).where(
                        _d.c.id == delivery_id, _d.c.webhook_id == webhook_id
                    )
                )
            )
            .mappings()
            .first()
        )
        return _delivery(row) if row is not None else None

    async def list_for_webhook(
        self, webhook_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Delivery]:
        query = select(*_LISTED).where(_d.c.webhook_id == webhook_id)
        if after is not None:
            query = query.where(
                tuple_(_d.c.created_at, _d.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(_d.c.created_at.desc(), _d.c.id.desc()).limit(limit)
        rows = (await self._session.execute(query)).mappings().all()
        return [_delivery({**row, "payload": b""}) for row in rows]

    async def claim_due(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        rows = (
            (
                await self._session.execute(
                    _CLAIM, {"now": now, "lease_until": lease_until, "limit": limit}
                )
            )
            .mappings()
            .all()
        )
        result = []
        for row in rows:
            context = row["webhook_id"].bytes
            secrets = [self._box.decrypt(row["secret"], context=context)]
            expires = row["previous_secret_expires_at"]
            if row["previous_secret"] is not None and expires is not None and now < expires:
                secrets.append(self._box.decrypt(row["previous_secret"], context=context))
            result.append(DueDelivery(delivery=_delivery(row), url=row["url"], secrets=secrets))
        return result

    async def save_attempt(self, delivery: Delivery) -> None:
        await self._session.execute(
            update(_d)
            .where(_d.c.id == delivery.id)
            .values(**_ATTEMPT.values(delivery), leased_until=None)
        )

    async def next_due_at(self) -> datetime | None:
        value: datetime | None = await self._session.scalar(
            select(func.min(_d.c.next_attempt_at)).where(
                _d.c.status == DeliveryStatus.PENDING.value
            )
        )
        return value


class SqlInbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        return await claim_event(self._session, inbox, event_id, event_type)
