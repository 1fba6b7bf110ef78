"""The planning events through the real consumer (RabbitMQ and PostgreSQL): an unblocked
ticket tells its assignee, and a bulk change tells each new assignee once, however many of
its events arrive, in which order, how often, and on how many connections at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_shared.event_schemas import Bulk, RelatedTicket, TicketUnblocked
from bugtracker_shared.events import CloudEvent, new_event
from fastapi import FastAPI

from services.notifications.tests.integration.helpers import notifications_of

pytestmark = pytest.mark.integration

Poll = Callable[..., Awaitable[Any]]
Publish = Callable[[CloudEvent], Awaitable[None]]
Assigned = Callable[..., CloudEvent]


async def all_handled(
    db: asyncpg.Connection, events: list[CloudEvent], poll: Poll, what: str
) -> None:
    """Wait until every event is applied: its inbox row commits with its notifications."""
    ids = list({event.id for event in events})

    async def done() -> bool:
        count = await db.fetchval(
            "SELECT count(*) FROM notifications.inbox WHERE event_id = ANY($1::uuid[])", ids
        )
        return bool(count == len(ids))

    await poll(done, what=what)


def unblocked(
    *,
    actor_id: uuid.UUID | None,
    assignee_id: uuid.UUID | None,
    reporter_id: uuid.UUID,
    watchers: list[uuid.UUID],
    key: str = "PLN-7",
    blocker_key: str = "PLN-3",
) -> CloudEvent:
    """A `ticket.unblocked` event shaped as the tickets service publishes it."""
    ticket_id, project_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    return new_event(
        "ticket.unblocked",
        service="tickets",
        subject=ticket_id,
        sequence=3,
        data=TicketUnblocked(
            id=ticket_id,
            key=key,
            project_id=project_id,
            title="Ship the importer",
            type="feature",
            priority="medium",
            status="open",
            resolution=None,
            reporter_id=reporter_id,
            assignee_id=assignee_id,
            labels=[],
            due_date=None,
            version=3,
            created_at=now,
            updated_at=now,
            deleted=False,
            watchers=watchers,
            blocker=RelatedTicket(id=uuid.uuid4(), key=blocker_key, project_id=project_id),
        ),
        actor_id=actor_id,
        correlation_id="test-correlation-id",
    )


async def test_an_unblocked_ticket_notifies_its_assignee_once(
    client: httpx.AsyncClient,
    keys: Any,
    publish: Publish,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    actor, assignee, reporter, watcher = (uuid.uuid4() for _ in range(4))
    event = unblocked(
        actor_id=actor, assignee_id=assignee, reporter_id=reporter, watchers=[watcher, actor]
    )
    unassigned = unblocked(
        actor_id=actor, assignee_id=None, reporter_id=reporter, watchers=[watcher]
    )

    await publish(event)
    await publish(event)  # a redelivery
    await publish(unassigned)
    await all_handled(superuser_db, [event, unassigned], poll, "the unblocked events")

    [notification] = await notifications_of(client, keys.headers(assignee))
    assert notification == notification | {
        "type": "ticket.unblocked",
        "event_id": str(event.id),
        "actor_id": str(actor),
        "ticket_id": event.subject,
        "ticket_key": "PLN-7",
        "summary": "PLN-7 is unblocked: Ship the importer (PLN-3 was finished)",
        "read_at": None,
    }
    for nobody in (actor, reporter, watcher):
        assert await notifications_of(client, keys.headers(nobody)) == []


async def test_a_bulk_change_notifies_each_assignee_once_per_bulk(
    client: httpx.AsyncClient,
    keys: Any,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    actor, ann, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    big = Bulk(id=uuid.uuid4(), size=6)
    small = Bulk(id=uuid.uuid4(), size=2)
    # Five tickets of one bulk change to ann (and one to bob); two of another to ann.
    to_ann = [
        assigned(actor_id=actor, assignee_id=ann, key=f"BLK-{n}", title="Migrate", bulk=big)
        for n in range(1, 6)
    ]
    to_bob = assigned(actor_id=actor, assignee_id=bob, key="BLK-6", title="Migrate", bulk=big)
    of_small = [
        assigned(actor_id=actor, assignee_id=ann, key=f"SML-{n}", title="Tidy", bulk=small)
        for n in range(1, 3)
    ]
    # Plain assignments still notify once per event.
    plain = [assigned(actor_id=actor, assignee_id=ann, key=f"ONE-{n}") for n in range(1, 3)]
    events = [*to_ann, to_bob, *of_small, *plain]

    # The first event of the big bulk is handled alone first, so it is the one that tells.
    await publish(to_ann[0])
    await all_handled(superuser_db, to_ann[:1], poll, "the first event of the bulk")
    for event in events:
        await publish(event)  # every event delivered (again, for the first one)
        await publish(event)  # and once more: a redelivery
    await all_handled(superuser_db, events, poll, "every event")

    ann_items = await notifications_of(client, keys.headers(ann))
    assert sorted(item["summary"] for item in ann_items if "2 tickets" not in item["summary"]) == [
        "You were assigned 6 tickets in a bulk change, e.g. BLK-1: Migrate",
        "You were assigned ONE-1: Crash on save",
        "You were assigned ONE-2: Crash on save",
    ]
    # The small bulk's two events may be handled in either order: whichever came first.
    [small_one] = [item for item in ann_items if "2 tickets" in item["summary"]]
    first_of_small = next(e for e in of_small if str(e.id) == small_one["event_id"])
    assert small_one["summary"] == (
        f"You were assigned 2 tickets in a bulk change, e.g. {small_one['ticket_key']}: Tidy"
    )
    assert small_one["ticket_id"] == first_of_small.subject
    [big_one] = [item for item in ann_items if "6 tickets" in item["summary"]]
    assert (big_one["event_id"], big_one["ticket_id"], big_one["ticket_key"]) == (
        str(to_ann[0].id),
        to_ann[0].subject,
        "BLK-1",
    )
    [bob_item] = await notifications_of(client, keys.headers(bob))
    assert (
        bob_item["summary"] == "You were assigned 6 tickets in a bulk change, e.g. BLK-6: Migrate"
    )
    assert await notifications_of(client, keys.headers(actor)) == []
    rows = await superuser_db.fetch(
        "SELECT user_id, group_key, count(*) AS n FROM notifications.notifications "
        "WHERE event_id = ANY($1::uuid[]) GROUP BY user_id, group_key",
        [event.id for event in events],
    )
    assert sorted((r["user_id"], r["group_key"], r["n"]) for r in rows if r["group_key"]) == sorted(
        [(ann, big.id, 1), (bob, big.id, 1), (ann, small.id, 1)]
    )
    assert [(r["user_id"], r["n"]) for r in rows if r["group_key"] is None] == [(ann, 2)]


async def test_events_of_one_bulk_handled_at_once_race_to_a_single_notification(
    app: FastAPI,
    client: httpx.AsyncClient,
    keys: Any,
    assigned: Assigned,
    superuser_db: asyncpg.Connection,
) -> None:
    """As two replicas (or one with several deliveries in flight) would: each event in its
    own transaction, all at the same time; the unique index makes all but one insert
    nothing, and each event is still recorded as applied."""
    assignee, bulk = uuid.uuid4(), Bulk(id=uuid.uuid4(), size=8)
    events = [
        assigned(actor_id=uuid.uuid4(), assignee_id=assignee, key=f"RCE-{n}", bulk=bulk)
        for n in range(8)
    ]

    await asyncio.gather(*(app.state.use_cases.handle_event(event) for event in events))
    await asyncio.gather(*(app.state.use_cases.handle_event(event) for event in events))

    [item] = await notifications_of(client, keys.headers(assignee))
    assert item["summary"].startswith("You were assigned 8 tickets in a bulk change, e.g. RCE-")
    assert item["event_id"] in {str(event.id) for event in events}
    assert await superuser_db.fetchval(
        "SELECT count(*) FROM notifications.inbox WHERE event_id = ANY($1::uuid[])",
        [event.id for event in events],
    ) == len(events)


async def test_two_replicas_notify_each_assignee_once_per_bulk(
    second_replica: Callable[[], AbstractAsyncContextManager[Any]],
    client: httpx.AsyncClient,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
) -> None:
    """Two replicas on the queue, every event of three bulk changes delivered twice: the
    replicas race for the events of one bulk (and for each event), one notification per
    assignee and bulk comes out."""
    async with second_replica():
        assignees = [uuid.uuid4() for _ in range(3)]
        bulks = [Bulk(id=uuid.uuid4(), size=10) for _ in range(3)]
        events = [
            assigned(actor_id=uuid.uuid4(), assignee_id=assignee, bulk=bulk)
            for bulk in bulks
            for assignee in assignees
            for _ in range(10)
        ]
        for event in events:
            await publish(event)
            await publish(event)
        await all_handled(superuser_db, events, poll, "every event, by either replica")
    rows = await superuser_db.fetch(
        "SELECT user_id, group_key, count(*) AS n FROM notifications.notifications "
        "WHERE user_id = ANY($1::uuid[]) GROUP BY user_id, group_key",
        assignees,
    )
    assert sorted((r["user_id"], r["group_key"], r["n"]) for r in rows) == sorted(
        (assignee, bulk.id, 1) for assignee in assignees for bulk in bulks
    )
