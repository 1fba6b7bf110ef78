"""In-memory fakes of the webhooks service's ports (tests only).

`FakeWebhooksDatabase` is the committed state: webhooks, deliveries (in insertion
order, which stands for the table's `position`), the inbox and the outbox. A
`FakeUnitOfWork` works on a private copy (`bugtracker_testkit.in_memory`). The delivery
repository's `claim_due` keeps the rule the SQL keeps: due, not leased, of an active
webhook, and no earlier pending delivery of the same webhook and ordering key.

`WebhooksWorld` wires the real use cases to them. `_conforms` assigns each fake to its
Protocol, so `mypy` reports a fake that drifts from its port.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.ports import EventSink
from bugtracker_shared.tokens import Principal
from bugtracker_testkit.in_memory import InMemoryOutbox, InMemoryOutboxDatabase, InMemoryUnitOfWork
from bugtracker_webhooks.application.delivery import DeliverySettings, Dispatcher, EventRecorder
from bugtracker_webhooks.application.ports import (
    DeliveryRepository,
    DueDelivery,
    Inbox,
    Keyset,
    ProjectAccess,
    ProjectDirectory,
    Sender,
    UnitOfWork,
    UrlPolicy,
    WebhookRepository,
)
from bugtracker_webhooks.application.use_cases import WebhookUseCases
from bugtracker_webhooks.domain.errors import InvalidWebhookError
from bugtracker_webhooks.domain.webhooks import AttemptResult, Delivery, DeliveryStatus, Webhook


@dataclass
class WebhooksState:
    webhooks: dict[uuid.UUID, Webhook] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    leases: dict[uuid.UUID, datetime] = field(default_factory=dict)
    inbox: dict[uuid.UUID, str] = field(default_factory=dict)
    outbox: list[CloudEvent] = field(default_factory=list)


class FakeWebhooksDatabase(InMemoryOutboxDatabase[WebhooksState]):
    def __init__(self) -> None:
        super().__init__(WebhooksState())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def deliveries_of(self, webhook_id: uuid.UUID) -> list[Delivery]:
        return [d for d in self.state.deliveries if d.webhook_id == webhook_id]


class FakeWebhookRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _rows(self) -> dict[uuid.UUID, Webhook]:
        return self._uow.state.webhooks

    async def add(self, webhook: Webhook) -> None:
        self._rows[webhook.id] = copy.deepcopy(webhook)

    async def get(self, webhook_id: uuid.UUID, *, for_update: bool = False) -> Webhook | None:
        found = self._rows.get(webhook_id)
        return copy.deepcopy(found) if found is not None else None

    async def save(self, webhook: Webhook) -> None:
        self._rows[webhook.id] = copy.deepcopy(webhook)

    async def delete(self, webhook_id: uuid.UUID) -> None:
        del self._rows[webhook_id]
        state = self._uow.state
        state.deliveries = [d for d in state.deliveries if d.webhook_id != webhook_id]

    async def count_for_project(self, project_id: uuid.UUID) -> int:
        return sum(1 for w in self._rows.values() if w.project_id == project_id)

    async def list_for_project(
        self, project_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Webhook]:
        rows = sorted(
            (w for w in self._rows.values() if w.project_id == project_id),
            key=lambda w: (w.created_at, w.id),
            reverse=True,
        )
        if after is not None:
            rows = [w for w in rows if (w.created_at, w.id) < (after.created_at, after.id)]
        return copy.deepcopy(rows[:limit])

    async def clear_failing(self, webhook_id: uuid.UUID) -> None:
        webhook = self._rows.get(webhook_id)
        if webhook is not None:
            webhook.failing_since = None

    async def active_for_project(self, project_id: uuid.UUID) -> list[Webhook]:
        return [
            copy.deepcopy(w) for w in self._rows.values() if w.project_id == project_id and w.active
        ]


class FakeDeliveryRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _rows(self) -> list[Delivery]:
        return self._uow.state.deliveries

    async def add_many(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            duplicate = delivery.redelivery_of is None and any(
                d.webhook_id == delivery.webhook_id
                and d.event_id == delivery.event_id
                and d.redelivery_of is None
                for d in self._rows
            )
            if not duplicate:
                self._rows.append(copy.deepcopy(delivery))

    async def get(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery | None:
        found = next(
            (d for d in self._rows if d.id == delivery_id and d.webhook_id == webhook_id), None
        )
        return copy.deepcopy(found) if found is not None else None

    async def list_for_webhook(
        self, webhook_id: uuid.UUID, *, after: Keyset | None, limit: int
    ) -> list[Delivery]:
        rows = sorted(
            (d for d in self._rows if d.webhook_id == webhook_id),
            key=lambda d: (d.created_at, d.id),
            reverse=True,
        )
        if after is not None:
            rows = [d for d in rows if (d.created_at, d.id) < (after.created_at, after.id)]
        return copy.deepcopy(rows[:limit])

    def _held_back(self, delivery: Delivery, position: int) -> bool:
        return any(
            e.status is DeliveryStatus.PENDING
            and e.webhook_id == delivery.webhook_id
            and e.ordering_key == delivery.ordering_key
            and (e.sequence, p) < (delivery.sequence, position)
            for p, e in enumerate(self._rows)
        )

    async def claim_due(
        self, now: datetime, *, lease_until: datetime, limit: int
    ) -> list[DueDelivery]:
        state = self._uow.state
        claimed: list[DueDelivery] = []
        for position, delivery in enumerate(self._rows):
            webhook = state.webhooks.get(delivery.webhook_id)
            lease = state.leases.get(delivery.id)
            if (
                len(claimed) < limit
                and webhook is not None
                and webhook.active
                and delivery.status is DeliveryStatus.PENDING
                and delivery.next_attempt_at is not None
                and delivery.next_attempt_at <= now
                and (lease is None or lease < now)
                and not self._held_back(delivery, position)
            ):
                state.leases[delivery.id] = lease_until
                claimed.append(
                    DueDelivery(
                        delivery=copy.deepcopy(delivery),
                        url=webhook.url,
                        secrets=webhook.signing_secrets(now),
                    )
                )
        return claimed

    async def save_attempt(self, delivery: Delivery) -> None:
        for i, row in enumerate(self._rows):
            if row.id == delivery.id:
                self._rows[i] = copy.deepcopy(delivery)
        self._uow.state.leases.pop(delivery.id, None)

    async def next_due_at(self) -> datetime | None:
        due = [
            d.next_attempt_at
            for d in self._rows
            if d.status is DeliveryStatus.PENDING and d.next_attempt_at is not None
        ]
        return min(due, default=None)


class FakeInbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def claim(self, event_id: uuid.UUID, event_type: str) -> bool:
        if event_id in self._uow.state.inbox:
            return False
        self._uow.state.inbox[event_id] = event_type
        return True


class FakeUnitOfWork(InMemoryUnitOfWork[WebhooksState]):
    def __init__(self, database: FakeWebhooksDatabase) -> None:
        super().__init__(database)
        self.webhooks: WebhookRepository = FakeWebhookRepository(self)
        self.deliveries: DeliveryRepository = FakeDeliveryRepository(self)
        self.inbox: Inbox = FakeInbox(self)
        self.outbox: EventSink = InMemoryOutbox(self)


@dataclass
class FakeProjects:
    """Who is what in which project: project id -> user id -> may manage webhooks."""

    members: dict[uuid.UUID, dict[uuid.UUID, bool]] = field(default_factory=dict)
    keys: dict[str, uuid.UUID] = field(default_factory=dict)
    unavailable: bool = False

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        project_id = self.keys.get(project_ref)
        if project_id is None:
            try:
                project_id = uuid.UUID(project_ref)
            except ValueError:
                return None
        role = self.members.get(project_id, {}).get(caller.user_id)
        if role is None:
            return None
        return ProjectAccess(project_id=project_id, can_manage_webhooks=role)

    async def maintainers(self, project_id: uuid.UUID) -> list[uuid.UUID]:
        if self.unavailable:
            raise ConnectionError("projects is away")
        return sorted(u for u, manages in self.members.get(project_id, {}).items() if manages)


@dataclass
class FakeSender:
    """Answers each attempt with the next scripted result (200 when the script is out)
    and records what was sent."""

    script: list[AttemptResult] = field(default_factory=list)
    sent: list[tuple[str, str, bytes, list[str]]] = field(default_factory=list)

    async def send(
        self, url: str, *, message_id: str, payload: bytes, secrets: Sequence[str]
    ) -> AttemptResult:
        self.sent.append((url, message_id, payload, list(secrets)))
        return (
            self.script.pop(0)
            if self.script
            else AttemptResult(status=200, duration_ms=1, error=None)
        )


class FakeUrls:
    """Refuses URLs that do not start with https:// (the real policy is egress's)."""

    async def check(self, url: str) -> None:
        if not url.startswith("https://"):
            raise InvalidWebhookError("url", "The URL must use https.")


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 30, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


SCHEDULE = (5.0, 300.0, 1800.0)


@dataclass
class WebhooksWorld:
    database: FakeWebhooksDatabase = field(default_factory=FakeWebhooksDatabase)
    projects: FakeProjects = field(default_factory=FakeProjects)
    sender: FakeSender = field(default_factory=FakeSender)
    clock: Clock = field(default_factory=Clock)
    secrets: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.webhooks = WebhookUseCases(
            uow=self.database.unit_of_work,
            projects=self.projects,
            urls=FakeUrls(),
            new_secret=lambda: f"whsec_secret{next(self.secrets)}",
            clock=self.clock,
        )
        self.recorder = EventRecorder(uow=self.database.unit_of_work, clock=self.clock)
        self.dispatcher = Dispatcher(
            uow=self.database.unit_of_work,
            sender=self.sender,
            projects=self.projects,
            settings=DeliverySettings(
                schedule=SCHEDULE,
                disable_after=timedelta(days=5),
                attempt_timeout=timedelta(seconds=10),
                poll_seconds=0.01,
                max_concurrent=8,
            ),
            clock=self.clock,
            jitter=lambda: 1.0,
        )

    def project(self, **people: bool) -> tuple[uuid.UUID, dict[str, Principal]]:
        """A project whose members are `people` (name -> may manage webhooks)."""
        project_id = uuid.uuid4()
        principals = {
            name: Principal(user_id=uuid.uuid4(), session_id=uuid.uuid4(), role="member", token="")
            for name in people
        }
        self.projects.members[project_id] = {
            principals[name].user_id: manages for name, manages in people.items()
        }
        return project_id, principals

    async def send_due(self) -> list[Delivery]:
        """One dispatcher pass, sent one after the other: what it recorded."""
        claimed = await self.dispatcher.claim(limit=100)
        return [await self.dispatcher.attempt(due) for due in claimed]


def _conforms(uow: FakeUnitOfWork) -> None:
    _u: UnitOfWork = uow
    _p: ProjectDirectory = FakeProjects()
    _s: Sender = FakeSender()
    _r: UrlPolicy = FakeUrls()
