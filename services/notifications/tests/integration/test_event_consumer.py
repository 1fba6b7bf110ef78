"""The consumer against real RabbitMQ and PostgreSQL: events in, notifications out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_notifications.domain.errors import MalformedEventError
from bugtracker_shared.events import CloudEvent, raw_event
from fastapi import FastAPI

from services.notifications.tests.integration.helpers import notifications_of

pytestmark = pytest.mark.integration

Poll = Callable[..., Awaitable[Any]]
Publish = Callable[[CloudEvent], Awaitable[None]]
Assigned = Callable[..., CloudEvent]


async def test_an_assignment_published_on_the_broker_notifies_the_new_assignee(
    client: httpx.AsyncClient, keys: Any, publish: Publish, assigned: Assigned, poll: Poll
) -> None:
    assigner, assignee = uuid.uuid4(), uuid.uuid4()
    ticket_id, project_id = uuid.uuid4(), uuid.uuid4()
    event = assigned(
        actor_id=assigner,
        assignee_id=assignee,
        key="BUG-7",
        title="Crash on save",
        ticket_id=ticket_id,
        project_id=project_id,
    )

    await publish(event)

    async def arrived() -> list[dict[str, Any]]:
        return await notifications_of(client, keys.headers(assignee))

    [notification] = await poll(arrived, what="the assignee's notification")
    assert notification == {
        "id": notification["id"],
        "type": "ticket.assigned",
        "event_id": str(event.id),
        "actor_id": str(assigner),
        "project_id": str(project_id),
        "ticket_id": str(ticket_id),
        "ticket_key": "BUG-7",
        "summary": "You were assigned BUG-7: Crash on save",
        "created_at": notification["created_at"],
        "read_at": None,
    }
    assert notification["created_at"].endswith("Z")
    assert await notifications_of(client, keys.headers(assigner)) == []


async def test_the_same_event_delivered_twice_notifies_once(
    client: httpx.AsyncClient, keys: Any, publish: Publish, assigned: Assigned, poll: Poll
) -> None:
    assignee = uuid.uuid4()
    event = assigned(actor_id=uuid.uuid4(), assignee_id=assignee, key="BUG-1")
    later = assigned(actor_id=uuid.uuid4(), assignee_id=assignee, key="BUG-2")

    await publish(event)
    await publish(event)  # a redelivery, as after a consumer crash before its ack
    await publish(later)

    async def both_handled() -> list[dict[str, Any]] | None:
        items = await notifications_of(client, keys.headers(assignee))
        return items if {item["ticket_key"] for item in items} == {"BUG-1", "BUG-2"} else None

    items = await poll(both_handled, what="both events to be handled")
    assert sorted(item["event_id"] for item in items) == sorted([str(event.id), str(later.id)])


async def test_concurrent_deliveries_of_one_event_race_to_a_single_notification(
    app: FastAPI, client: httpx.AsyncClient, keys: Any, assigned: Assigned
) -> None:
    assignee = uuid.uuid4()
    event = assigned(actor_id=uuid.uuid4(), assignee_id=assignee)

    await asyncio.gather(*(app.state.use_cases.handle_event(event) for _ in range(5)))
    await app.state.use_cases.handle_event(event)

    items = await notifications_of(client, keys.headers(assignee))
    assert [item["event_id"] for item in items] == [str(event.id)]


@pytest.mark.parametrize("case", ["self-assignment", "unassignment"])
async def test_an_assignment_that_concerns_nobody_else_notifies_nobody(
    client: httpx.AsyncClient,
    keys: Any,
    publish: Publish,
    assigned: Assigned,
    poll: Poll,
    superuser_db: asyncpg.Connection,
    case: str,
) -> None:
    actor, previous = uuid.uuid4(), uuid.uuid4()
    event = (
        assigned(actor_id=actor, assignee_id=actor, previous_assignee_id=previous)
        if case == "self-assignment"
        else assigned(actor_id=actor, assignee_id=None, previous_assignee_id=previous)
    )

    await publish(event)

    async def processed() -> bool:
        # The inbox row commits in the same transaction as any notification would.
        return bool(
            await superuser_db.fetchval(
                "SELECT 1 FROM notifications.inbox WHERE event_id = $1", event.id
            )
        )

    await poll(processed, what="the event to be processed")
    for user in (actor, previous):
        assert await notifications_of(client, keys.headers(user)) == []
        count = await client.get("/api/v1/notifications/unread-count", headers=keys.headers(user))
        assert count.json() == {"count": 0}
    assert not await superuser_db.fetchval(
        "SELECT count(*) FROM notifications.notifications WHERE event_id = $1", event.id
    )


@pytest.mark.usefixtures("client")
async def test_an_event_type_without_rules_is_ignored(
    app: FastAPI, superuser_db: asyncpg.Connection
) -> None:
    ticket_id = uuid.uuid4()
    event = raw_event(
        "ticket.created",
        service="tickets",
        subject=ticket_id,
        sequence=1,
        data={"id": str(ticket_id), "assignee_id": str(uuid.uuid4())},
        actor_id=uuid.uuid4(),
        correlation_id=None,
    )
    foreign = event.model_copy(update={"type": "com.example.something.v1"})

    await app.state.use_cases.handle_event(event)
    await app.state.use_cases.handle_event(foreign)

    for ignored in (event, foreign):
        assert not await superuser_db.fetchval(
            "SELECT count(*) FROM notifications.inbox WHERE event_id = $1", ignored.id
        )
        assert not await superuser_db.fetchval(
            "SELECT count(*) FROM notifications.notifications WHERE event_id = $1", ignored.id
        )


@pytest.mark.usefixtures("client")
async def test_a_malformed_event_fails_and_is_not_marked_as_handled(
    app: FastAPI, assigned: Assigned, superuser_db: asyncpg.Connection
) -> None:
    event = assigned(actor_id=uuid.uuid4(), assignee_id=uuid.uuid4())
    broken = event.model_copy(update={"data": {**event.data, "key": None}})

    with pytest.raises(MalformedEventError):
        await app.state.use_cases.handle_event(broken)

    # Rolled back: a redelivery (or the dead-letter queue) still has a chance to apply it.
    assert not await superuser_db.fetchval(
        "SELECT count(*) FROM notifications.inbox WHERE event_id = $1", event.id
    )
