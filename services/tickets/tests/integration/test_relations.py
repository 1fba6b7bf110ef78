"""Relations between tickets through the tickets service's HTTP app on PostgreSQL, with
the projects service faked (conftest.py); the repository's planning reads
(`unfinished_blockers`, `unblocked_by`, `blocks_path`) on the database itself."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.db import create_engine
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.domain.planning import MAX_BLOCKS_DEPTH
from bugtracker_tickets.infrastructure.relation_repository import SqlRelationRepository
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.integration

OWNER, MAINTAINER, DEV, REPORTER, VIEWER, STRANGER = (uuid.uuid4() for _ in range(6))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


async def new_ticket(api: Any, who: uuid.UUID = DEV, project: str = "BUG") -> dict[str, Any]:
    response = await api.create(who, project)
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def relate(
    api: Any, who: uuid.UUID, ticket: dict[str, Any], type: str, **other: str
) -> httpx.Response:
    response: httpx.Response = await api.client.post(
        f"/api/v1/tickets/{ticket['key']}/relations",
        json={"type": type, **other},
        headers=api.headers(who),
    )
    return response


async def listed(api: Any, who: uuid.UUID, ticket: dict[str, Any]) -> list[tuple[str, str]]:
    response = await api.client.get(
        f"/api/v1/tickets/{ticket['id']}/relations", headers=api.headers(who)
    )
    assert response.status_code == 200, response.text
    return [(item["type"], item["ticket"]["key"]) for item in response.json()["items"]]


async def relation_events(db: asyncpg.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await db.fetch(
        "SELECT routing_key, aggregate_id, payload FROM tickets.outbox "
        "WHERE routing_key IN ('ticket.related', 'ticket.unrelated') ORDER BY position"
    )
    return [(r["routing_key"], r["aggregate_id"], json.loads(r["payload"])) for r in rows]


async def chain_in_sql(db: asyncpg.Connection, tickets: list[dict[str, Any]]) -> None:
    """Each ticket blocks the next, written straight into the table."""
    await db.executemany(
        "INSERT INTO tickets.relations (id, source_id, target_id, type, created_at, created_by)"
        " VALUES ($1, $2, $3, 'blocks', $4, $5)",
        [
            (uuid.uuid4(), uuid.UUID(a["id"]), uuid.UUID(b["id"]), datetime.now(UTC), DEV)
            for a, b in itertools.pairwise(tickets)
        ],
    )


# -- create, list, delete -------------------------------------------------------------------


async def test_both_sides_see_the_relation_with_the_inverse_type_and_each_gets_an_event(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    project = tickets_api.projects.add("BUG", ROLES)
    a, b = await new_ticket(tickets_api), await new_ticket(tickets_api)

    created = await relate(tickets_api, DEV, a, "blocks", key="bug-2")
    assert created.status_code == 201, created.text
    relation = created.json()
    assert relation["type"] == "blocks"
    assert relation["ticket"] == {
        "id": b["id"],
        "key": "BUG-2",
        "title": b["title"],
        "status": "open",
        "project_id": str(project.id),
    }
    assert created.headers["location"] == f"/api/v1/tickets/{a['id']}/relations/{relation['id']}"
    assert await listed(tickets_api, VIEWER, a) == [("blocks", "BUG-2")]
    assert await listed(tickets_api, VIEWER, b) == [("blocked_by", "BUG-1")]

    events = await relation_events(superuser_db)
    assert [(name, subject) for name, subject, _ in events] == [
        ("ticket.related", a["id"]),
        ("ticket.related", b["id"]),
    ]
    for _, _, event in events:
        assert event["sequence"] == 1
        assert event["data"]["version"] == 1
        assert event["actorid"] == str(DEV)
    assert events[0][2]["data"]["relation"] == {
        "id": relation["id"],
        "type": "blocks",
        "ticket": {"id": b["id"], "key": "BUG-2", "project_id": str(project.id)},
    }
    assert events[1][2]["data"]["relation"]["type"] == "blocked_by"
    assert events[1][2]["data"]["relation"]["ticket"]["key"] == "BUG-1"

    # Not a ticket field: the versions stay.
    for ticket in (a, b):
        got = await tickets_api.client.get(
            f"/api/v1/tickets/{ticket['id']}", headers=tickets_api.headers(VIEWER)
        )
        assert (got.json()["version"], got.headers["etag"]) == (1, '"1"')

    # Removed from the other side.
    removed = await tickets_api.client.delete(
        f"/api/v1/tickets/BUG-2/relations/{relation['id']}", headers=tickets_api.headers(DEV)
    )
    assert removed.status_code == 204
    assert await listed(tickets_api, VIEWER, a) == []
    assert await listed(tickets_api, VIEWER, b) == []
    unrelated = (await relation_events(superuser_db))[2:]
    assert [(n, s, e["data"]["relation"]["type"]) for n, s, e in unrelated] == [
        ("ticket.unrelated", a["id"], "blocks"),
        ("ticket.unrelated", b["id"], "blocked_by"),
    ]
    assert all(e["sequence"] == 1 for _, _, e in unrelated)
    again = await tickets_api.client.delete(
        f"/api/v1/tickets/BUG-2/relations/{relation['id']}", headers=tickets_api.headers(DEV)
    )
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"


async def test_the_list_is_oldest_first_and_paginated(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a = await new_ticket(tickets_api)
    others = [await new_ticket(tickets_api) for _ in range(3)]
    types = ["relates_to", "duplicated_by", "blocked_by"]
    for other, type in zip(others, types, strict=True):
        assert (await relate(tickets_api, DEV, a, type, ticket_id=other["id"])).status_code == 201

    url = f"/api/v1/tickets/{a['key']}/relations"
    first = await tickets_api.client.get(
        url, params={"limit": 2}, headers=tickets_api.headers(VIEWER)
    )
    assert [(i["type"], i["ticket"]["key"]) for i in first.json()["items"]] == [
        ("relates_to", "BUG-2"),
        ("duplicated_by", "BUG-3"),
    ]
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    assert 'rel="next"' in first.headers["link"]
    rest = await tickets_api.client.get(
        url, params={"limit": 2, "cursor": cursor}, headers=tickets_api.headers(VIEWER)
    )
    assert [(i["type"], i["ticket"]["key"]) for i in rest.json()["items"]] == [
        ("blocked_by", "BUG-4")
    ]
    assert rest.json()["next_cursor"] is None
    assert await listed(tickets_api, VIEWER, others[2]) == [("blocks", "BUG-1")]
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "nonsense"}):
        refused = await tickets_api.client.get(url, params=bad, headers=tickets_api.headers(DEV))
        assert refused.status_code in (400, 422), bad


# -- refusals -------------------------------------------------------------------------------


async def test_the_body_names_the_other_ticket_exactly_once(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a, b = await new_ticket(tickets_api), await new_ticket(tickets_api)
    for body in (
        {"type": "blocks"},
        {"type": "blocks", "ticket_id": b["id"], "key": "BUG-2"},
        {"type": "blocks", "key": "BUG-2", "note": "x"},
        {"type": "causes", "key": "BUG-2"},
        {"key": "BUG-2"},
    ):
        response = await tickets_api.client.post(
            f"/api/v1/tickets/{a['id']}/relations", json=body, headers=tickets_api.headers(DEV)
        )
        assert response.status_code == 422, body
    self_relation = await relate(tickets_api, DEV, a, "relates_to", key="BUG-1")
    assert self_relation.status_code == 422
    assert self_relation.json()["code"] == "invalid_relation"
    for missing in ({"key": "BUG-99"}, {"key": "not a key"}, {"ticket_id": str(uuid.uuid4())}):
        response = await relate(tickets_api, DEV, a, "blocks", **missing)
        assert response.status_code == 404, missing
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("first", "again", "code"),
    [
        ("blocks", "blocked_by", "relation_exists"),  # from the other side: the same relation
        ("blocks", "blocks", "relation_cycle"),  # b blocks a: they would block each other
        ("duplicates", "duplicates", "relation_exists"),
        ("duplicates", "duplicated_by", "relation_exists"),
        ("relates_to", "relates_to", "relation_exists"),
    ],
)
async def test_the_same_relation_again_conflicts(
    tickets_api: Any, first: str, again: str, code: str
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a, b = await new_ticket(tickets_api), await new_ticket(tickets_api)
    assert (await relate(tickets_api, DEV, a, first, key="BUG-2")).status_code == 201
    conflict = await relate(tickets_api, DEV, b, again, key="BUG-1")
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["code"] == code
    assert len(await listed(tickets_api, DEV, a)) == 1


async def test_a_blocks_cycle_of_three_is_refused(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a, b, c = [await new_ticket(tickets_api) for _ in range(3)]
    assert (await relate(tickets_api, DEV, a, "blocks", key="BUG-2")).status_code == 201
    assert (await relate(tickets_api, DEV, b, "blocks", key="BUG-3")).status_code == 201
    cycle = await relate(tickets_api, DEV, c, "blocks", key="BUG-1")
    assert cycle.status_code == 409
    assert cycle.json()["code"] == "relation_cycle"
    assert (await relate(tickets_api, DEV, a, "blocked_by", key="BUG-3")).status_code == 409
    assert (await relate(tickets_api, DEV, c, "relates_to", key="BUG-1")).status_code == 201
    assert await listed(tickets_api, DEV, c) == [("blocked_by", "BUG-2"), ("relates_to", "BUG-1")]


async def test_a_chain_deeper_than_the_bound_is_refused_rather_than_walked(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    chain: list[dict[str, Any]] = []
    while len(chain) < MAX_BLOCKS_DEPTH + 2:  # ten at a time: well within the pool
        chain += await asyncio.gather(*(new_ticket(tickets_api) for _ in range(10)))
    chain = sorted(chain, key=lambda t: int(t["key"].split("-")[1]))[: MAX_BLOCKS_DEPTH + 2]
    await chain_in_sql(superuser_db, chain[1:])  # MAX_BLOCKS_DEPTH steps
    x = await new_ticket(tickets_api)

    at_the_bound = await relate(tickets_api, DEV, x, "blocks", ticket_id=chain[1]["id"])
    assert at_the_bound.status_code == 201, at_the_bound.text
    await chain_in_sql(superuser_db, chain[:2])  # now one step more from chain[0]
    too_deep = await relate(tickets_api, DEV, x, "blocks", ticket_id=chain[0]["id"])
    assert too_deep.status_code == 422
    assert too_deep.json()["code"] == "invalid_relation"
    assert str(MAX_BLOCKS_DEPTH) in too_deep.json()["detail"]
    near = await relate(tickets_api, DEV, chain[3], "blocks", ticket_id=chain[0]["id"])
    assert near.json()["code"] == "relation_cycle"


async def test_two_concurrent_inserts_cannot_close_a_cycle(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    for _ in range(5):
        a, b = await new_ticket(tickets_api), await new_ticket(tickets_api)
        answers = await asyncio.gather(
            relate(tickets_api, DEV, a, "blocks", ticket_id=b["id"]),
            relate(tickets_api, DEV, b, "blocks", ticket_id=a["id"]),
        )
        assert sorted(r.status_code for r in answers) == [201, 409]
        assert len(await listed(tickets_api, DEV, a)) == 1
    for _ in range(5):
        # Two edges between four different tickets (no row in common): only the graph
        # lock keeps the second from closing the cycle a > b > c > d > a.
        a, b, c, d = [await new_ticket(tickets_api) for _ in range(4)]
        assert (await relate(tickets_api, DEV, a, "blocks", ticket_id=b["id"])).status_code == 201
        assert (await relate(tickets_api, DEV, c, "blocks", ticket_id=d["id"])).status_code == 201
        answers = await asyncio.gather(
            relate(tickets_api, DEV, b, "blocks", ticket_id=c["id"]),
            relate(tickets_api, DEV, d, "blocks", ticket_id=a["id"]),
        )
        assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
        assert [r.json()["code"] for r in answers if r.status_code == 409] == ["relation_cycle"]


# -- who may ---------------------------------------------------------------------------------


async def test_permissions(tickets_api: Any) -> None:
    project = tickets_api.projects.add("BUG", ROLES)
    mine = await new_ticket(tickets_api, REPORTER)
    theirs = await new_ticket(tickets_api, DEV)

    viewer = await relate(tickets_api, VIEWER, mine, "relates_to", key="BUG-2")
    assert viewer.status_code == 403
    assert viewer.json()["code"] == "forbidden"
    assert (await relate(tickets_api, REPORTER, theirs, "blocks", key="BUG-1")).status_code == 403
    stranger = await relate(tickets_api, STRANGER, mine, "blocks", key="BUG-2")
    assert stranger.status_code == 404
    own = await relate(tickets_api, REPORTER, mine, "blocks", key="BUG-2")
    assert own.status_code == 201
    by_dev = await relate(tickets_api, DEV, theirs, "relates_to", key="BUG-1")
    assert by_dev.status_code == 201

    url = f"/api/v1/tickets/BUG-1/relations/{own.json()['id']}"
    for who, status in ((VIEWER, 403), (STRANGER, 404)):
        response = await tickets_api.client.delete(url, headers=tickets_api.headers(who))
        assert response.status_code == status
    other_side = f"/api/v1/tickets/BUG-2/relations/{own.json()['id']}"
    forbidden = await tickets_api.client.delete(other_side, headers=tickets_api.headers(REPORTER))
    assert forbidden.status_code == 403
    listing = await tickets_api.client.get(
        "/api/v1/tickets/BUG-1/relations", headers=tickets_api.headers(STRANGER)
    )
    assert listing.status_code == 404
    assert (
        await tickets_api.client.delete(url, headers=tickets_api.headers(REPORTER))
    ).status_code == 204

    project.archived = True
    archived = await relate(tickets_api, DEV, theirs, "blocks", key="BUG-1")
    assert archived.status_code == 409
    assert archived.json()["code"] == "project_archived"


# -- across projects, losing access, deleted tickets -----------------------------------------


async def test_across_projects_only_while_the_caller_may_read_both(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    ops = tickets_api.projects.add("OPS", {DEV: ProjectRole.DEVELOPER, VIEWER: ProjectRole.VIEWER})
    a = await new_ticket(tickets_api, REPORTER)
    elsewhere = await new_ticket(tickets_api, DEV, "OPS")

    unseen = await relate(tickets_api, REPORTER, a, "blocks", key="OPS-1")
    assert unseen.status_code == 404
    assert unseen.json()["code"] == "not_found"
    created = await relate(tickets_api, DEV, a, "blocks", ticket_id=elsewhere["id"])
    assert created.status_code == 201
    assert created.json()["ticket"]["project_id"] == str(ops.id)

    assert await listed(tickets_api, VIEWER, a) == [("blocks", "OPS-1")]
    assert await listed(tickets_api, VIEWER, elsewhere) == [("blocked_by", "BUG-1")]
    assert await listed(tickets_api, REPORTER, a) == []  # cannot read OPS

    del ops.members[VIEWER]
    assert await listed(tickets_api, VIEWER, a) == []
    hidden = await tickets_api.client.delete(
        f"/api/v1/tickets/BUG-1/relations/{created.json()['id']}",
        headers=tickets_api.headers(MAINTAINER),  # may edit BUG-1, cannot read OPS
    )
    assert hidden.status_code == 404
    assert await listed(tickets_api, DEV, a) == [("blocks", "OPS-1")]


async def test_a_deleted_ticket_hides_its_relations_until_restored(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a, b = await new_ticket(tickets_api), await new_ticket(tickets_api)
    assert (await relate(tickets_api, DEV, a, "duplicates", key="BUG-2")).status_code == 201
    deleted = await tickets_api.client.delete(
        f"/api/v1/tickets/{b['id']}", headers=tickets_api.headers(MAINTAINER)
    )
    assert deleted.status_code == 204

    assert await listed(tickets_api, VIEWER, a) == []
    gone = await tickets_api.client.get(
        f"/api/v1/tickets/{b['id']}/relations", headers=tickets_api.headers(VIEWER)
    )
    assert gone.status_code == 404
    to_deleted = await relate(tickets_api, DEV, a, "relates_to", ticket_id=b["id"])
    assert to_deleted.status_code == 404
    assert await superuser_db.fetchval("SELECT count(*) FROM tickets.relations") == 1

    restored = await tickets_api.client.post(
        f"/api/v1/tickets/{b['id']}/restore", headers=tickets_api.headers(MAINTAINER)
    )
    assert restored.status_code == 200
    assert await listed(tickets_api, VIEWER, a) == [("duplicates", "BUG-2")]
    assert await listed(tickets_api, VIEWER, b) == [("duplicated_by", "BUG-1")]


# -- the repository's planning reads ---------------------------------------------------------


@pytest.fixture
async def session(infra: Stack) -> AsyncIterator[AsyncSession]:
    engine = create_engine(infra.database_url("tickets"), schema="tickets", pool_size=1)
    try:
        async with AsyncSession(engine) as session:
            yield session
    finally:
        await engine.dispose()


async def set_status(db: asyncpg.Connection, ticket: dict[str, Any], status: str) -> None:
    """The status and its category in the default workflow, as the service writes them."""
    category = {"done": "done", "closed": "done", "open": "todo"}.get(status, "in_progress")
    await db.execute(
        "UPDATE tickets.tickets SET status = $2, status_category = $3 WHERE id = $1",
        uuid.UUID(ticket["id"]),
        status,
        category,
    )


async def test_unfinished_blockers_and_unblocked_by_in_postgresql(
    tickets_api: Any, superuser_db: asyncpg.Connection, session: AsyncSession
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    a, b, c, d, e = [await new_ticket(tickets_api) for _ in range(5)]
    for blocker, blocked in ((a, c), (b, c), (a, d), (e, a)):
        response = await relate(tickets_api, DEV, blocker, "blocks", ticket_id=blocked["id"])
        assert response.status_code == 201
    repo = SqlRelationRepository(session)
    ids = {t["key"]: uuid.UUID(t["id"]) for t in (a, b, c, d, e)}

    async def blockers(key: str) -> list[str]:
        return [ref.key for ref in await repo.unfinished_blockers(ids[key], limit=10)]

    async def unblocked(key: str) -> list[str]:
        return sorted(t.key for t in await repo.unblocked_by(ids[key]))

    assert await blockers("BUG-3") == ["BUG-1", "BUG-2"]
    assert await blockers("BUG-5") == []
    assert (await repo.unfinished_blockers(ids["BUG-3"], limit=1))[0].status == "open"
    assert await unblocked("BUG-1") == ["BUG-4"]  # BUG-3 is still blocked by BUG-2

    await session.rollback()  # a new transaction, without the locks unblocked_by took
    await set_status(superuser_db, b, "closed")
    assert await blockers("BUG-3") == ["BUG-1"]
    assert await unblocked("BUG-1") == ["BUG-3", "BUG-4"]
    (ticket,) = [t for t in await repo.unblocked_by(ids["BUG-1"]) if t.key == "BUG-3"]
    assert (ticket.id, ticket.title) == (ids["BUG-3"], c["title"])

    # A finished or deleted blocked ticket is not announced; a deleted blocker does not block.
    await session.rollback()  # unblocked_by locked what it found: let the writes below in
    await set_status(superuser_db, d, "done")
    await superuser_db.execute(
        "UPDATE tickets.tickets SET deleted_at = now() WHERE id = $1", ids["BUG-1"]
    )
    await session.rollback()
    assert await unblocked("BUG-1") == ["BUG-3"]
    assert await blockers("BUG-3") == []
    assert await unblocked("BUG-5") == []  # BUG-1, the one it blocks, is deleted
    assert await blockers("BUG-1") == ["BUG-5"]


async def test_blocks_path_answers_yes_no_or_unknown_past_the_bound(
    tickets_api: Any, superuser_db: asyncpg.Connection, session: AsyncSession
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    chain = [await new_ticket(tickets_api) for _ in range(6)]
    await chain_in_sql(superuser_db, chain[:5])  # 1 > 2 > 3 > 4 > 5; 6 apart
    await chain_in_sql(superuser_db, [chain[1], chain[3]])  # a shortcut: 2 > 4
    repo = SqlRelationRepository(session)
    ids = [uuid.UUID(t["id"]) for t in chain]

    assert await repo.blocks_path(ids[0], ids[4], max_depth=4) is True
    assert await repo.blocks_path(ids[0], ids[4], max_depth=3) is True  # via the shortcut
    assert await repo.blocks_path(ids[0], ids[4], max_depth=2) is None
    assert await repo.blocks_path(ids[4], ids[0], max_depth=10) is False
    assert await repo.blocks_path(ids[0], ids[5], max_depth=10) is False
    assert await repo.blocks_path(ids[0], ids[5], max_depth=3) is None
    assert await repo.blocks_path(ids[3], ids[4], max_depth=1) is True
