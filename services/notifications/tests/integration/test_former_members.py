"""Someone removed from a project hears nothing more of its tickets (docs/adr/0030), even
from events that still name them (a watcher list taken before the removal); added back,
they are notified again."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, new_event

pytestmark = pytest.mark.integration

Publish = Callable[[CloudEvent], Awaitable[None]]


def membership(name: str, project_id: uuid.UUID, user_id: uuid.UUID, version: int) -> CloudEvent:
    return new_event(
        name,
        service="projects",
        subject=project_id,
        sequence=version,
        data=EVENT_DATA[name](
            project_id=project_id, project_key="EXM", user_id=user_id, role="developer"
        ),
        actor_id=uuid.uuid4(),
        correlation_id="test-correlation-id",
    )


async def test_an_ex_member_is_not_notified_until_added_again(
    client: httpx.AsyncClient,
    keys: Any,
    publish: Publish,
    assigned: Any,
    poll: Any,
    superuser_db: asyncpg.Connection,
) -> None:
    project_id, member, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def types_of(user: uuid.UUID) -> list[str]:
        response = await client.get("/api/v1/notifications", headers=keys.headers(user))
        return [n["type"] + ":" + str(n.get("ticket_key")) for n in response.json()["items"]]

    await publish(membership("project.member_removed", project_id, member, 5))

    async def removal_applied() -> bool | None:
        row = await superuser_db.fetchval(
            "SELECT 1 FROM notifications.former_members WHERE project_id = $1 AND user_id = $2",
            project_id,
            member,
        )
        return True if row else None

    await poll(removal_applied, what="the removal")
    # Two assignments in the project, the ex-member's first; the other member's shows
    # that both were handled.
    await publish(assigned(actor_id=other, assignee_id=member, key="EXM-1", project_id=project_id))
    await publish(assigned(actor_id=member, assignee_id=other, key="EXM-2", project_id=project_id))

    async def others() -> list[str] | None:
        seen = await types_of(other)
        return seen or None

    assert await poll(others, what="the other member's notification") == ["ticket.assigned:EXM-2"]
    assert await types_of(member) == []

    await publish(membership("project.member_added", project_id, member, 6))

    async def added() -> list[str] | None:
        seen = await types_of(member)
        return seen if "project.member_added:None" in seen else None

    await poll(added, what="the added-again notice")
    await publish(assigned(actor_id=other, assignee_id=member, key="EXM-3", project_id=project_id))

    async def assigned_again() -> list[str] | None:
        seen = await types_of(member)
        return seen if "ticket.assigned:EXM-3" in seen else None

    await poll(assigned_again, what="the assignment after re-adding")
