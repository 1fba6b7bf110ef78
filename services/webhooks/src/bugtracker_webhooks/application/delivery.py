"""From events to HTTP requests: deliveries are recorded with the event's inbox row, then
sent by the dispatcher, retried on the schedule and kept in order per ticket.

- **Recording** (`handle_event`): one delivery per (active webhook of the event's project
  whose patterns match, event), in the transaction that records the event in the inbox,
  so a redelivered event adds nothing and a crash before the commit loses nothing (the
  broker redelivers).
- **Sending** (`Dispatcher`): each pass claims due deliveries under a lease (replicas
  skip what another holds; a crashed sender's lease runs out and the delivery is sent
  again, with the same `webhook-id`), sends them at once (bounded per host by the
  sender), and records each outcome. A delivery waits while an earlier one of its
  webhook and ordering key (the ticket) is pending, so a failing event holds back the
  later events of its ticket, not those of others.
- **Failure**: a failed attempt is retried after the schedule's next delay (with
  jitter, or the endpoint's `Retry-After` when longer); after the last one the delivery
  is `failed`. An endpoint whose attempts have all failed for `disable_after` is turned
  off, with a `webhook.disabled` event that names the project's maintainers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, new_event

from bugtracker_webhooks.application.ports import (
    DueDelivery,
    ProjectDirectory,
    Sender,
    UnitOfWork,
)
from bugtracker_webhooks.application.use_cases import (
    DELIVERABLE_EVENTS,
    SERVICE,
    event_payload,
    pending_delivery,
    utc_now,
)
from bugtracker_webhooks.domain.patterns import matches
from bugtracker_webhooks.domain.retries import next_delay, parse_retry_after
from bugtracker_webhooks.domain.webhooks import AttemptResult, Delivery, DeliveryStatus

logger = logging.getLogger("bugtracker.webhooks")

# The routing keys the service's queue is bound to: every event that names a project.
HANDLED_EVENTS = DELIVERABLE_EVENTS
# Deliveries claimed per pass; a lease outlives the longest attempt by this margin.
CLAIM_BATCH = 100
LEASE_MARGIN = timedelta(seconds=30)
ERROR_BACKOFF_SECONDS = 1.0


def project_of(event: CloudEvent, name: str) -> uuid.UUID | None:
    """The project an event belongs to: `data.project_id`, or a project event's own id."""
    raw = event.data.get("project_id")
    if raw is None and name.startswith("project."):
        raw = event.data.get("id")
    try:
        return uuid.UUID(str(raw)) if raw is not None else None
    except ValueError:
        return None


@dataclass
class EventRecorder:
    uow: Callable[[], UnitOfWork]
    wake: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = field(default=utc_now)

    async def handle_event(self, event: CloudEvent) -> None:
        """Record the deliveries of one event, exactly once per event id."""
        try:
            name = event.name
        except ValueError:
            return
        project_id = project_of(event, name)
        if project_id is None or name not in HANDLED_EVENTS:
            return
        now = self.clock()
        async with self.uow() as uow:
            if not await uow.inbox.claim(event.id, event.type):
                logger.info("event %s was handled already; skipped", event.id)
                return
            hooks = await uow.webhooks.active_for_project(project_id)
            # Only the project's own webhooks: an event never reaches another project's.
            matching = [hook for hook in hooks if matches(hook.events, name)]
            if not matching:
                await uow.commit()
                return
            payload = event_payload(event)
            await uow.deliveries.add_many(
                [
                    pending_delivery(
                        hook.id,
                        event_id=event.id,
                        event_type=name,
                        payload=payload,
                        ordering_key=event.subject,
                        sequence=event.sequence,
                        now=now,
                    )
                    for hook in matching
                ]
            )
            await uow.commit()
        self.wake()


@dataclass
class DeliverySettings:
    schedule: tuple[float, ...]
    disable_after: timedelta
    attempt_timeout: timedelta
    poll_seconds: float
    max_concurrent: int


@dataclass
class Dispatcher:
    uow: Callable[[], UnitOfWork]
    sender: Sender
    projects: ProjectDirectory
    settings: DeliverySettings
    clock: Callable[[], datetime] = field(default=utc_now)
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.8, 1.2))  # noqa: S311
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Send due deliveries until cancelled; sleeps until woken, polled or due.
        At most `max_concurrent` are in flight: a pass claims no more than are free."""
        try:
            while True:
                self._wakeup.clear()
                free = self.settings.max_concurrent - len(self._in_flight)
                try:
                    claimed = await self.claim(limit=min(CLAIM_BATCH, free))
                except Exception:
                    logger.exception("claiming due deliveries failed; retrying")
                    await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                    continue
                for due in claimed:
                    task = asyncio.create_task(self._send_one(due))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if claimed and len(claimed) == free:
                    # Full: wait for a slot (a finished send wakes us), not for the poll.
                    await self._wakeup.wait()
                    continue
                if len(claimed) == CLAIM_BATCH:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wakeup.wait()
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def claim(self, *, limit: int) -> list[DueDelivery]:
        if limit <= 0:
            return []
        now = self.clock()
        async with self.uow() as uow:
            claimed = await uow.deliveries.claim_due(
                now,
                lease_until=now + self.settings.attempt_timeout + LEASE_MARGIN,
                limit=limit,
            )
            await uow.commit()
        return claimed

    async def _send_one(self, due: DueDelivery) -> None:
        try:
            await self.attempt(due)
        except Exception:
            # The lease runs out and the delivery is tried again.
            logger.exception("delivery %s could not be recorded", due.delivery.id)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)  # its slot is free before the loop wakes
            self.wake()  # a delivery of the same ticket may be due now

    async def attempt(self, due: DueDelivery) -> Delivery:
        """One attempt of a claimed delivery, and its outcome recorded."""
        delivery = due.delivery
        result = await self.sender.send(
            due.url,
            message_id=str(delivery.event_id),
            payload=delivery.payload,
            secrets=due.secrets,
        )
        return await self.record(delivery, result)

    async def record(self, delivery: Delivery, result: AttemptResult) -> Delivery:
        now = self.clock()
        delivery.attempt += 1
        delivery.response_status = result.status
        delivery.duration_ms = result.duration_ms
        delivery.error = result.error
        delivery.updated_at = now
        if result.succeeded:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.next_attempt_at = None
        else:
            delay = next_delay(
                self.settings.schedule,
                delivery.attempt,
                retry_after=parse_retry_after(result.retry_after, now),
                jitter=self.jitter(),
            )
            if delay is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = now + timedelta(seconds=delay)
        maintainers = await self._maintainers_if_disabling(delivery, result, now)
        async with self.uow() as uow:
            await uow.deliveries.save_attempt(delivery)
            await self._track_health(uow, delivery, result, now, maintainers)
            await uow.commit()
        return delivery

    async def _maintainers_if_disabling(
        self, delivery: Delivery, result: AttemptResult, now: datetime
    ) -> list[uuid.UUID] | None:
        """The maintainers to tell, read before the transaction (an HTTP call), when this
        failure will disable the endpoint; None otherwise, or when projects cannot say
        (the next failure disables it then)."""
        if result.succeeded:
            return None
        async with self.uow() as uow:
            webhook = await uow.webhooks.get(delivery.webhook_id)
        if webhook is None or not self._due_for_disabling(webhook.failing_since, now):
            return None
        try:
            return await self.projects.maintainers(webhook.project_id)
        except Exception:
            logger.warning("could not read the maintainers of project %s", webhook.project_id)
            return None

    def _due_for_disabling(self, failing_since: datetime | None, now: datetime) -> bool:
        return failing_since is not None and now - failing_since >= self.settings.disable_after

    async def _track_health(
        self,
        uow: UnitOfWork,
        delivery: Delivery,
        result: AttemptResult,
        now: datetime,
        maintainers: list[uuid.UUID] | None,
    ) -> None:
        """Keep the endpoint's failure clock; turn it off after days of failures."""
        if result.succeeded:
            await uow.webhooks.clear_failing(delivery.webhook_id)
            return
        webhook = await uow.webhooks.get(delivery.webhook_id, for_update=True)
        if webhook is None or not webhook.active:
            return
        if webhook.failing_since is None:
            webhook.failing_since = now
            await uow.webhooks.save(webhook)
            return
        if not self._due_for_disabling(webhook.failing_since, now) or maintainers is None:
            return
        webhook.active = False
        webhook.disabled_at = now
        webhook.touch(now)
        await uow.webhooks.save(webhook)
        await uow.outbox.add(
            new_event(
                "webhook.disabled",
                service=SERVICE,
                subject=webhook.id,
                sequence=webhook.version,
                data=EVENT_DATA["webhook.disabled"](
                    **webhook.event_fields(), maintainer_ids=maintainers
                ),
                actor_id=None,
                correlation_id=None,
            )
        )
        logger.warning(
            "webhook %s disabled: every attempt has failed since %s",
            webhook.id,
            webhook.failing_since.isoformat(),
        )
