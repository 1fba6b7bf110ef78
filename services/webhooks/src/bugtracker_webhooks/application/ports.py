"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bugtracker_shared.ports import EventSink, Transaction
from bugtracker_shared.tokens import Principal

from bugtracker_webhooks.domain.webhooks import AttemptResult, Delivery, Webhook


@dataclass(frozen=True, slots=True)
class Keyset:
    """A position in a list, newest first: rows strictly after it come next."""

    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """The caller's standing in a project, as the projects service tells it."""

    project_id: uuid.UUID
    can_manage_webhooks: bool


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook) -> None: ...
    async def get(self, webhook_id: uuid.UUID, *, for_update: bool = False) -> Webhook | None:
        """`for_update` locks the row until the unit of work ends."""
        ...

    async def save(self, webhook: Webhook) -> None: ...
    async def delete(self, webhook_id: uuid.UUID) -> None:
        """The webhook and its deliveries."""
        ...

    async def count_for_project(self, project_id: uuid.UUID) -> int: ...
    async def list_for_project(
        self, project_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Webhook]:
        """Newest first (created_at, id descending)."""
        ...

    async def active_for_project(self, project_id: uuid.UUID) -> list[Webhook]:
        """The project's active webhooks, whose patterns an event is matched against."""
        ...

    async def clear_failing(self, webhook_id: uuid.UUID) -> None:
        """A success: the webhook's failure clock stops (it locks nothing when it was not
        running, so the successes of one endpoint do not queue on its row)."""
        ...


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs from its webhook."""

    delivery: Delivery
    url: str
    secrets: list[str]


class DeliveryRepository(Protocol):
    async def add_many(self, deliveries: Sequence[Delivery]) -> None:
        """Insert; a delivery of an event to a webhook that has one already (the event
        redelivered by the broker) is skipped."""
        ...

    async def get(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery | None: ...
    async def list_for_webhook(
        self, webhook_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Delivery]:
        """Newest first (created_at, id descending)."""
        ...

    async def claim_due(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        """Pending deliveries of active webhooks that are due, not leased by anyone, and
        held back by no earlier pending delivery of the same webhook and ordering key;
        leased until `lease_until` (another replica skips them meanwhile)."""
        ...

    async def save_attempt(self, delivery: Delivery) -> None:
        """Store the attempt's outcome and release the lease."""
        ...

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (None: nothing is pending)."""
        ...


class Inbox(Protocol):
    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        """Record the event as handled in this unit of work; False if it was already."""
        ...


class ProjectDirectory(Protocol):
    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        """The caller's standing in the project (id or key); None when it does not exist
        or the caller is not a member."""
        ...

    async def maintainers(self, project_id: uuid.UUID) -> list[uuid.UUID]:
        """The project's maintainers and owners (raises when projects cannot say)."""
        ...


class Sender(Protocol):
    async def send(
        self, url: str, *, message_id: str, payload: bytes, secrets: Sequence[str]
    ) -> AttemptResult:
        """POST `payload` signed with each of `secrets` (Standard Webhooks); never raises
        for what the endpoint or the network does."""
        ...


class UrlPolicy(Protocol):
    async def check(self, url: str) -> None:
        """Raise `InvalidWebhookError` for a URL deliveries may not go to."""
        ...


class UnitOfWork(Transaction, Protocol):
    webhooks: WebhookRepository
    deliveries: DeliveryRepository
    inbox: Inbox
    outbox: EventSink
