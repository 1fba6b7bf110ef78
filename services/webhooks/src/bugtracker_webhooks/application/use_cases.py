"""Managing a project's webhooks (maintainers only): create, read, list, change, delete,
rotate the secret, read the delivery log, redeliver and ping.

Each change bumps the webhook's version and writes one `webhook.*` event to the outbox in
its transaction. Who may do what is the projects service's word (ADR 0043): members of a
project see that it exists, maintainers and owners manage its webhooks, anyone else gets
404 as if it did not exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.etags import check_version
from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, event_type, new_event
from bugtracker_shared.pagination import (
    InvalidCursorError,
    Listing,
    decode_time_id_cursor,
    time_id_key,
)
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_webhooks.application.ports import (
    Keyset,
    ProjectDirectory,
    UnitOfWork,
    UrlPolicy,
)
from bugtracker_webhooks.domain.errors import (
    DeliveryNotFoundError,
    InvalidWebhookError,
    NotAllowedError,
    ProjectNotFoundError,
    WebhookLimitError,
    WebhookNotFoundError,
)
from bugtracker_webhooks.domain.patterns import InvalidPatternError, validate_patterns
from bugtracker_webhooks.domain.webhooks import (
    PING_EVENT,
    Delivery,
    DeliveryStatus,
    Webhook,
    project_ref,
)

SERVICE = "webhooks"
# Events that belong to no project never reach a webhook (users, sessions).
NOT_DELIVERED_PREFIXES = ("user.", "auth.")
DELIVERABLE_EVENTS: tuple[str, ...] = tuple(
    name for name in EVENT_DATA if not name.startswith(NOT_DELIVERED_PREFIXES)
)
MAX_WEBHOOKS_PER_PROJECT = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def keyset_of(cursor: str) -> Keyset:
    created_at, id_ = decode_time_id_cursor(cursor)
    if created_at.tzinfo is None:
        raise InvalidCursorError("The cursor is not valid.")
    return Keyset(created_at=created_at, id=id_)


def patterns_of(events: list[str]) -> list[str]:
    try:
        return validate_patterns(events, DELIVERABLE_EVENTS)
    except InvalidPatternError as exc:
        raise InvalidWebhookError("events", str(exc)) from exc


def event_payload(event: CloudEvent) -> bytes:
    """The bytes every attempt sends: the event as it travels on the broker."""
    return event.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True)
class NewWebhook:
    url: str
    events: list[str]
    description: str = ""
    active: bool = True


@dataclass(frozen=True)
class WebhookChanges:
    """The fields to change; None leaves one as it is."""

    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    active: bool | None = None


@dataclass
class WebhookUseCases:
    uow: Callable[[], UnitOfWork]
    projects: ProjectDirectory
    urls: UrlPolicy
    new_secret: Callable[[], str]
    # Told after a commit that added deliveries (a ping, a redelivery): the dispatcher.
    wake: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = field(default=utc_now)

    async def _managed_project(self, caller: Principal, ref: str) -> uuid.UUID:
        named = project_ref(ref)
        access = await self.projects.access(named, caller) if named is not None else None
        if access is None:
            raise ProjectNotFoundError
        if not access.can_manage_webhooks:
            raise NotAllowedError
        return access.project_id

    async def _check_managed(self, caller: Principal, webhook: Webhook | None) -> Webhook:
        if webhook is None:
            raise WebhookNotFoundError
        access = await self.projects.access(str(webhook.project_id), caller)
        if access is None:
            raise WebhookNotFoundError
        if not access.can_manage_webhooks:
            raise NotAllowedError
        return webhook

    async def _readable(self, caller: Principal, webhook_id: uuid.UUID) -> Webhook:
        async with self.uow() as uow:
            webhook = await uow.webhooks.get(webhook_id)
        return await self._check_managed(caller, webhook)

    def _event(self, name: str, webhook: Webhook, caller: Principal, **extra: Any) -> CloudEvent:
        deleted = name == "webhook.deleted"
        return new_event(
            name,
            service=SERVICE,
            subject=webhook.id,
            sequence=webhook.version,
            data=EVENT_DATA[name](**webhook.event_fields(deleted=deleted), **extra),
            actor_id=caller.user_id,
            correlation_id=current_request_id(),
        )

    async def create(self, caller: Principal, project_ref: str, new: NewWebhook) -> Webhook:
        project_id = await self._managed_project(caller, project_ref)
        events = patterns_of(new.events)
        await self.urls.check(new.url)
        now = self.clock()
        webhook = Webhook(
            id=uuid.uuid4(),
            project_id=project_id,
            url=new.url,
            events=events,
            description=new.description,
            active=new.active,
            secret=self.new_secret(),
            previous_secret=None,
            previous_secret_expires_at=None,
            failing_since=None,
            disabled_at=None,
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
            version=1,
        )
        async with self.uow() as uow:
            if await uow.webhooks.count_for_project(project_id) >= MAX_WEBHOOKS_PER_PROJECT:
                raise WebhookLimitError(MAX_WEBHOOKS_PER_PROJECT)
            await uow.webhooks.add(webhook)
            await uow.outbox.add(self._event("webhook.created", webhook, caller))
            await uow.commit()
        return webhook

    async def list_for_project(
        self, caller: Principal, project_ref: str, *, limit: int, cursor: str | None
    ) -> Listing[Webhook]:
        project_id = await self._managed_project(caller, project_ref)
        after = keyset_of(cursor) if cursor is not None else None
        async with self.uow() as uow:
            rows = await uow.webhooks.list_for_project(project_id, after=after, limit=limit + 1)
        return Listing.from_overfetch(rows, limit, lambda w: time_id_key(w.created_at, w.id))

    async def get(self, caller: Principal, webhook_id: uuid.UUID) -> Webhook:
        return await self._readable(caller, webhook_id)

    async def update(
        self,
        caller: Principal,
        webhook_id: uuid.UUID,
        changes: WebhookChanges,
        *,
        expected_version: int | None,
    ) -> Webhook:
        await self._readable(caller, webhook_id)
        events = patterns_of(changes.events) if changes.events is not None else None
        if changes.url is not None:
            await self.urls.check(changes.url)
        async with self.uow() as uow:
            webhook = await uow.webhooks.get(webhook_id, for_update=True)
            if webhook is None:
                raise WebhookNotFoundError
            check_version(webhook.version, expected_version)
            changed = _apply(webhook, changes, events)
            if not changed:
                return webhook
            if changes.active and webhook.disabled_at is not None:
                # Turned on again by hand: a fresh start for the failure clock.
                changed["disabled_at"] = {"from": webhook.disabled_at.isoformat(), "to": None}
                webhook.disabled_at = None
                webhook.failing_since = None
            webhook.touch(self.clock())
            await uow.webhooks.save(webhook)
            await uow.outbox.add(self._event("webhook.updated", webhook, caller, changes=changed))
            await uow.commit()
        if changes.active:
            self.wake()
        return webhook

    async def delete(self, caller: Principal, webhook_id: uuid.UUID) -> None:
        await self._readable(caller, webhook_id)
        async with self.uow() as uow:
            webhook = await uow.webhooks.get(webhook_id, for_update=True)
            if webhook is None:
                raise WebhookNotFoundError
            webhook.touch(self.clock())
            await uow.webhooks.delete(webhook_id)
            await uow.outbox.add(self._event("webhook.deleted", webhook, caller))
            await uow.commit()

    async def rotate_secret(self, caller: Principal, webhook_id: uuid.UUID) -> Webhook:
        """A new secret; the old one keeps signing for 24 h beside it."""
        await self._readable(caller, webhook_id)
        async with self.uow() as uow:
            webhook = await uow.webhooks.get(webhook_id, for_update=True)
            if webhook is None:
                raise WebhookNotFoundError
            webhook.rotate(self.new_secret(), self.clock())
            await uow.webhooks.save(webhook)
            changes = {"secret": {"from": "(previous)", "to": "(rotated)"}}
            await uow.outbox.add(self._event("webhook.updated", webhook, caller, changes=changes))
            await uow.commit()
        return webhook

    async def deliveries(
        self, caller: Principal, webhook_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Listing[Delivery]:
        await self._readable(caller, webhook_id)
        after = keyset_of(cursor) if cursor is not None else None
        async with self.uow() as uow:
            rows = await uow.deliveries.list_for_webhook(webhook_id, after=after, limit=limit + 1)
        return Listing.from_overfetch(rows, limit, lambda d: time_id_key(d.created_at, d.id))

    async def redeliver(
        self, caller: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> Delivery:
        """The same event again (same `webhook-id`), as a delivery of its own that waits
        for nothing else."""
        await self._readable(caller, webhook_id)
        now = self.clock()
        async with self.uow() as uow:
            original = await uow.deliveries.get(webhook_id, delivery_id)
            if original is None:
                raise DeliveryNotFoundError
            delivery = pending_delivery(
                webhook_id,
                event_id=original.event_id,
                event_type=original.event_type,
                payload=original.payload,
                ordering_key=f"redelivery:{uuid.uuid4()}",
                sequence=0,
                now=now,
                redelivery_of=original.redelivery_of or original.id,
            )
            await uow.deliveries.add_many([delivery])
            await uow.commit()
        self.wake()
        return delivery

    async def ping(self, caller: Principal, webhook_id: uuid.UUID) -> Delivery:
        """A `webhook.ping` event to the endpoint, whatever its patterns."""
        webhook = await self._readable(caller, webhook_id)
        now = self.clock()
        event = CloudEvent(
            id=uuid.uuid4(),
            source=f"/bugtracker/{SERVICE}",
            type=event_type(PING_EVENT),
            subject=str(webhook.id),
            time=now,
            actorid=str(caller.user_id),
            correlationid=current_request_id(),
            sequence=webhook.version,
            data={"webhook_id": str(webhook.id), "project_id": str(webhook.project_id)},
        )
        delivery = pending_delivery(
            webhook.id,
            event_id=event.id,
            event_type=PING_EVENT,
            payload=event_payload(event),
            ordering_key=f"ping:{event.id}",
            sequence=0,
            now=now,
        )
        async with self.uow() as uow:
            await uow.deliveries.add_many([delivery])
            await uow.commit()
        self.wake()
        return delivery


def _apply(
    webhook: Webhook, changes: WebhookChanges, events: list[str] | None
) -> dict[str, dict[str, Any]]:
    """Change `webhook`; what changed, as `{field: {from, to}}`."""
    changed: dict[str, dict[str, Any]] = {}
    for name, new in (
        ("url", changes.url),
        ("events", events),
        ("description", changes.description),
        ("active", changes.active),
    ):
        old = getattr(webhook, name)
        if new is None or new == old:
            continue
        changed[name] = {"from": old, "to": new}
        setattr(webhook, name, new)
    return changed


def pending_delivery(
    webhook_id: uuid.UUID,
    *,
    event_id: uuid.UUID,
    event_type: str,
    payload: bytes,
    ordering_key: str,
    sequence: int,
    now: datetime,
    redelivery_of: uuid.UUID | None = None,
) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        webhook_id=webhook_id,
        event_id=event_id,
        event_type=event_type,
        ordering_key=ordering_key,
        sequence=sequence,
        payload=payload,
        status=DeliveryStatus.PENDING,
        attempt=0,
        next_attempt_at=now,
        response_status=None,
        duration_ms=None,
        error=None,
        created_at=now,
        updated_at=now,
        redelivery_of=redelivery_of,
    )
