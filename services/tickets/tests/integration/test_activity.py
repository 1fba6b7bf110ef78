"""The project activity feed (docs/adr/0046) on the real database and broker: the
handler stores one entry per event however often it is delivered, and the service's own
consumer builds the feed from the events its changes publish."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.db import create_engine
from bugtracker_shared.event_schemas import ProjectMemberAdded, ProjectMemberRemoved
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.tokens import Principal
from bugtracker_testkit import eventually
from bugtracker_tickets.application.activity import ActivityUseCases
from bugtracker_tickets.domain.errors import ProjectNotFoundError
from bugtracker_tickets.domain.tickets import ProjectAccess
from bugtracker_tickets.infrastructure.activity_repository import SqlActivityLog
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration

OWNER, DEV, VIEWER, OTHER = (uuid.uuid4() for _ in range(4))
ROLES = {OWNER: ProjectRole.OWNER, DEV: ProjectRole.DEVELOPER, VIEWER: ProjectRole.VIEWER}


class NoAccess:
    """The handler needs no access check; the feed's reads are tested through the app."""

    async def project_access(self, principal: Principal, project_ref: str) -> ProjectAccess:
        raise ProjectNotFoundError("No such project.")


@pytest.fixture
async def engine(infra: Stack) -> AsyncIterator[AsyncEngine]:
    migrated(infra, "tickets")
    await truncate_schema(infra, "tickets")
    engine = create_engine(infra.database_url("tickets"), schema="tickets", pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


def member_event(name: str, project_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> CloudEvent:
    model = ProjectMemberAdded if name == "project.member_added" else ProjectMemberRemoved
    event = new_event(
        name,
        service="projects",
        subject=project_id,
        sequence=2,
        data=model(project_id=project_id, project_key="ACT", user_id=user_id, role="developer"),
        actor_id=OWNER,
        correlation_id=None,
    )
    return event.model_copy(update={"time": at})


async def test_a_redelivered_event_makes_one_entry(engine: AsyncEngine) -> None:
    log = SqlActivityLog(engine)
    cases = ActivityUseCases(log=log, tickets=NoAccess())
    project = uuid.uuid4()
    event = member_event("project.member_added", project, DEV, datetime.now(UTC))

    await cases.handle_event(event)
    await cases.handle_event(event)  # the broker delivers it again

    entries = await log.page(project, after=None, limit=10)
    assert [(e.event_id, e.kind, e.actor_id, e.ticket_key) for e in entries] == [
        (event.id, "member.added", OWNER, None)
    ]
    assert entries[0].summary == f"added {DEV} as developer"
    assert entries[0].at == event.time


async def test_the_feed_pages_newest_first_on_its_keyset(engine: AsyncEngine) -> None:
    log = SqlActivityLog(engine)
    cases = ActivityUseCases(log=log, tickets=NoAccess())
    project, elsewhere = uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC)
    # Two at the same instant: the id orders them.
    moments = [start, start + timedelta(seconds=1), start + timedelta(seconds=1)]
    moments += [start + timedelta(seconds=n) for n in range(2, 6)]
    for n, at in enumerate(moments):
        name = "project.member_added" if n % 2 == 0 else "project.member_removed"
        await cases.handle_event(member_event(name, project, uuid.uuid4(), at))
    await cases.handle_event(member_event("project.member_added", elsewhere, DEV, start))

    everything = await log.page(project, after=None, limit=100)
    walked = []
    after = None
    while page := await log.page(project, after=after, limit=3):
        walked += page
        after = (page[-1].at, page[-1].id or 0)

    assert len(everything) == len(moments)
    assert [e.id for e in walked] == [e.id for e in everything]
    order = [(e.at, e.id or 0) for e in everything]
    assert order == sorted(order, reverse=True)


async def test_a_deleted_projects_entries_are_purged_after_the_restore_window(
    engine: AsyncEngine,
) -> None:
    log = SqlActivityLog(engine)
    cases = ActivityUseCases(log=log, tickets=NoAccess())
    gone, kept = uuid.uuid4(), uuid.uuid4()
    for project in (gone, kept):
        await cases.handle_event(
            member_event("project.member_added", project, DEV, datetime.now(UTC))
        )
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO tickets.project_view (id, key, archived, deleted, version, deleted_at) "
            "VALUES ($1, 'GONE', false, true, 3, now() - interval '31 days'), "
            "($2, 'KEPT', false, true, 3, now() - interval '1 day')",
            (gone, kept),
        )

    assert await cases.purge_deleted() == 1
    assert await log.page(gone, after=None, limit=10) == []
    assert len(await log.page(kept, after=None, limit=10)) == 1


# -- through the service: its changes' events, its consumer, its endpoint -------------------


async def feed(api: Any, who: uuid.UUID, query: str = "") -> Any:
    return await api.client.get(f"/api/v1/projects/ACT/activity{query}", headers=api.headers(who))


async def test_the_service_builds_the_feed_from_its_own_events(tickets_api: Any) -> None:
    tickets_api.projects.add("ACT", ROLES)
    created = await tickets_api.create(DEV, "ACT", title="Login fails")
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    patched = await tickets_api.client.patch(
        f"/api/v1/tickets/{key}", json={"priority": "high"}, headers=tickets_api.headers(DEV)
    )
    assert patched.status_code == 200, patched.text
    comment = await tickets_api.client.post(
        f"/api/v1/tickets/{key}/comments",
        json={"body": "me too"},
        headers=tickets_api.headers(VIEWER),
    )
    assert comment.status_code == 201, comment.text
    doomed = (await tickets_api.create(DEV, "ACT", title="Dup")).json()["key"]

    async def four_entries() -> list[dict[str, Any]] | None:
        response = await feed(tickets_api, VIEWER)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items if len(items) == 4 else None

    await eventually(four_entries, what="the feed's four entries")
    deleted = await tickets_api.client.delete(
        f"/api/v1/tickets/{doomed}", headers=tickets_api.headers(OWNER)
    )
    assert deleted.status_code == 204, deleted.text

    items = (await feed(tickets_api, VIEWER)).json()["items"]
    assert [(i["kind"], i["ticket_key"], i["actor_id"]) for i in items] == [
        ("ticket.commented", key, str(VIEWER)),
        ("ticket.updated", key, str(DEV)),
        ("ticket.created", key, str(DEV)),
    ]
    assert items[1]["summary"] == "changed priority from medium to high"

    first = await feed(tickets_api, VIEWER, "?limit=2")
    assert first.json()["next_cursor"] is not None
    assert 'rel="next"' in first.headers["link"]
    rest = await feed(tickets_api, VIEWER, f"?limit=2&cursor={first.json()['next_cursor']}")
    assert [i["kind"] for i in first.json()["items"] + rest.json()["items"]] == [
        i["kind"] for i in items
    ]
    assert rest.json()["next_cursor"] is None

    assert (await feed(tickets_api, OTHER)).status_code == 404
    assert (await feed(tickets_api, VIEWER, "?cursor=bm9wZQ")).status_code == 422
