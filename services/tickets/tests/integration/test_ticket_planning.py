"""The ticket side of planning (docs/adr/0039): `milestone_id` and `parent_id` on tickets,
the `milestone=`, `parent=` and `is=blocked` filters, children, and the rule that a
ticket with unfinished blockers or children cannot be finished."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

OWNER, DEV, REPORTER, VIEWER, OTHER = (uuid.uuid4() for _ in range(5))
ROLES = {
    OWNER: ProjectRole.OWNER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


async def milestone_in(db: asyncpg.Connection, project_id: uuid.UUID, name: str) -> uuid.UUID:
    """A milestone row as the milestones API writes it (that API is tested on its own)."""
    milestone_id = uuid.uuid4()
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO tickets.milestones (id, project_id, name, description, state,"
        " created_at, updated_at, version) VALUES ($1, $2, $3, '', 'open', $4, $4, 1)",
        milestone_id,
        project_id,
        name,
        now,
    )
    return milestone_id


async def blocks(db: asyncpg.Connection, blocker: str, blocked: str) -> None:
    await db.execute(
        "INSERT INTO tickets.relations (id, source_id, target_id, type, created_at, created_by)"
        " VALUES ($1, $2, $3, 'blocks', now(), $4)",
        uuid.uuid4(),
        uuid.UUID(blocker),
        uuid.UUID(blocked),
        DEV,
    )


async def patch(api: Any, who: uuid.UUID, ticket: str, **body: Any) -> Any:
    return await api.client.patch(f"/api/v1/tickets/{ticket}", json=body, headers=api.headers(who))


async def move(api: Any, ticket: str, to: str, **extra: Any) -> Any:
    return await api.client.post(
        f"/api/v1/tickets/{ticket}/transitions", json={"to": to, **extra}, headers=api.headers(DEV)
    )


async def listed(api: Any, query: str) -> list[str]:
    response = await api.client.get(
        f"/api/v1/projects/PL/tickets?{query}&sort=created_at", headers=api.headers(VIEWER)
    )
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["items"]]


async def test_a_milestone_is_set_with_history_and_event_and_filters_the_list(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    project = tickets_api.projects.add("PL", ROLES)
    other = tickets_api.projects.add("XO", {DEV: ProjectRole.DEVELOPER})
    release = await milestone_in(superuser_db, project.id, "1.0")
    foreign = await milestone_in(superuser_db, other.id, "1.0")
    first = (await tickets_api.create(REPORTER, "PL", milestone_id=str(release))).json()
    second = (await tickets_api.create(REPORTER, "PL")).json()
    assert first["milestone_id"] == str(release)
    assert second["milestone_id"] is None

    changed = await patch(tickets_api, DEV, second["id"], milestone_id=str(release))
    assert changed.status_code == 200, changed.text
    assert changed.json()["milestone_id"] == str(release)
    assert changed.json()["version"] == 2
    assert await listed(tickets_api, f"milestone={release}") == ["PL-1", "PL-2"]
    cleared = await patch(tickets_api, DEV, first["id"], milestone_id=None)
    assert cleared.json()["milestone_id"] is None
    assert await listed(tickets_api, f"milestone={release}") == ["PL-2"]
    assert await listed(tickets_api, "milestone=none") == ["PL-1"]

    history = await tickets_api.client.get(
        f"/api/v1/tickets/{second['id']}/history", headers=tickets_api.headers(VIEWER)
    )
    assert [(h["field"], h["from"], h["to"]) for h in history.json()["items"]] == [
        ("milestone_id", None, str(release))
    ]
    payload = await superuser_db.fetchval(
        "SELECT payload FROM tickets.outbox WHERE aggregate_id = $1 AND routing_key ="
        " 'ticket.updated'",
        second["id"],
    )
    data = json.loads(payload)["data"]
    assert data["milestone_id"] == str(release)
    assert data["changes"] == {"milestone_id": {"from": None, "to": str(release)}}

    # Another project's milestone, a deleted one, one that does not exist: 422, no change.
    await superuser_db.execute(
        "UPDATE tickets.milestones SET deleted_at = now() WHERE name = '1.0' AND project_id = $1",
        project.id,
    )
    for milestone in (foreign, release, uuid.uuid4()):
        refused = await patch(tickets_api, DEV, first["id"], milestone_id=str(milestone))
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_milestone"
        created = await tickets_api.create(REPORTER, "PL", milestone_id=str(milestone))
        assert created.status_code == 422
    assert (
        await tickets_api.client.get(
            f"/api/v1/tickets/{first['id']}", headers=tickets_api.headers(DEV)
        )
    ).json()["version"] == 2


async def test_sub_tickets_stay_in_the_project_without_cycles_and_five_deep(
    tickets_api: Any,
) -> None:
    tickets_api.projects.add("PL", ROLES)
    tickets_api.projects.add("XO", {REPORTER: ProjectRole.REPORTER})
    chain = [
        (await tickets_api.create(REPORTER, "PL", title=f"level {n}")).json() for n in range(6)
    ]
    for parent, child in itertools.pairwise(chain[:4]):
        response = await patch(tickets_api, DEV, child["id"], parent_id=parent["id"])
        assert response.status_code == 200, response.text
    # chain[0] > chain[1] > chain[2] > chain[3]: four levels.
    children = await tickets_api.client.get(
        f"/api/v1/tickets/{chain[0]['key']}/children", headers=tickets_api.headers(VIEWER)
    )
    assert children.status_code == 200
    assert [c["key"] for c in children.json()["items"]] == [chain[1]["key"]]
    assert await listed(tickets_api, f"parent={chain[1]['id']}") == [chain[2]["key"]]
    assert await listed(tickets_api, "parent=none") == [
        chain[0]["key"],
        chain[4]["key"],
        chain[5]["key"],
    ]

    # A fifth level is allowed, a sixth is not (a new child of chain[4], or a subtree).
    assert (
        await patch(tickets_api, DEV, chain[4]["id"], parent_id=chain[3]["id"])
    ).status_code == 200
    too_deep = await tickets_api.create(REPORTER, "PL", parent_id=chain[4]["id"])
    assert too_deep.status_code == 422
    assert too_deep.json()["code"] == "invalid_parent"
    assert (
        await patch(tickets_api, DEV, chain[5]["id"], parent_id=chain[4]["id"])
    ).status_code == 422
    # A subtree of two levels moved under the fourth level would make six.
    assert (await patch(tickets_api, DEV, chain[3]["id"], parent_id=None)).status_code == 200
    assert (
        await patch(tickets_api, DEV, chain[5]["id"], parent_id=chain[4]["id"])
    ).status_code == 200
    moved = await patch(tickets_api, DEV, chain[3]["id"], parent_id=chain[2]["id"])
    assert moved.status_code == 422, "3 levels above + a subtree of 3 = 6"

    # Cycles: a ticket under itself or under its own descendant.
    for parent in (chain[0], chain[2]):
        cycle = await patch(tickets_api, DEV, chain[0]["id"], parent_id=parent["id"])
        assert cycle.status_code == 422, cycle.text
        assert cycle.json()["code"] == "invalid_parent"
    # Another project's ticket, or one that does not exist.
    foreign = (await tickets_api.create(REPORTER, "XO")).json()
    for parent_id in (foreign["id"], str(uuid.uuid4())):
        refused = await patch(tickets_api, DEV, chain[0]["id"], parent_id=parent_id)
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_parent"
    # A reporter edits the parent of their own ticket, a viewer cannot.
    assert (await patch(tickets_api, REPORTER, chain[1]["id"], parent_id=None)).status_code == 200
    assert (
        await patch(tickets_api, VIEWER, chain[1]["id"], parent_id=chain[0]["id"])
    ).status_code == 403


async def test_unfinished_children_and_blockers_hold_the_ticket_until_finished(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("PL", ROLES)
    parent = (await tickets_api.create(REPORTER, "PL", title="epic")).json()
    child = (await tickets_api.create(REPORTER, "PL", parent_id=parent["id"])).json()
    blocker = (await tickets_api.create(REPORTER, "PL", title="blocker")).json()
    other_blocker = (await tickets_api.create(REPORTER, "PL", title="other")).json()
    blocked = (
        await tickets_api.create(REPORTER, "PL", title="blocked", assignee_id=str(DEV))
    ).json()
    await blocks(superuser_db, blocker["id"], blocked["id"])
    await blocks(superuser_db, other_blocker["id"], blocked["id"])
    assert await listed(tickets_api, "is=blocked") == [blocked["key"]]

    refused = await move(tickets_api, parent["id"], "closed", resolution="wont_fix")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "unfinished_dependencies"
    assert [c["key"] for c in refused.json()["children"]] == [child["key"]]
    refused = await move(tickets_api, blocked["id"], "in_progress")
    assert refused.status_code == 200  # only a done-category status is held back
    refused = await move(tickets_api, blocked["id"], "done")
    assert refused.status_code == 409
    assert {b["key"] for b in refused.json()["blockers"]} == {blocker["key"], other_blocker["key"]}
    assert refused.json()["children"] == []

    # Finishing one blocker leaves the ticket blocked; the second unblocks it, once.
    assert (
        await move(tickets_api, blocker["id"], "closed", resolution="invalid")
    ).status_code == 200
    assert await listed(tickets_api, "is=blocked") == [blocked["key"]]
    # A deleted blocker no longer holds anything back.
    deleted = await tickets_api.client.delete(
        f"/api/v1/tickets/{other_blocker['id']}", headers=tickets_api.headers(OWNER)
    )
    assert deleted.status_code == 204
    assert await listed(tickets_api, "is=blocked") == []
    await tickets_api.client.post(
        f"/api/v1/tickets/{other_blocker['id']}/restore", headers=tickets_api.headers(OWNER)
    )
    assert await listed(tickets_api, "is=blocked") == [blocked["key"]]
    assert (await move(tickets_api, other_blocker["id"], "in_progress")).status_code == 200
    assert (await move(tickets_api, other_blocker["id"], "done")).status_code == 200
    assert await listed(tickets_api, "is=blocked") == []
    unblocked = await superuser_db.fetch(
        "SELECT aggregate_id, payload FROM tickets.outbox WHERE routing_key = 'ticket.unblocked'"
    )
    assert [r["aggregate_id"] for r in unblocked] == [blocked["id"]]
    data = json.loads(unblocked[0]["payload"])["data"]
    assert data["blocker"]["key"] == other_blocker["key"]
    assert data["assignee_id"] == str(DEV)

    assert (await move(tickets_api, blocked["id"], "done")).status_code == 200
    assert (
        await move(tickets_api, child["id"], "closed", resolution="duplicate")
    ).status_code == 200
    assert (
        await move(tickets_api, parent["id"], "closed", resolution="wont_fix")
    ).status_code == 200


async def _relate(api: Any, ticket: dict[str, Any], type: str, other: dict[str, Any]) -> str:
    response = await api.client.post(
        f"/api/v1/tickets/{ticket['id']}/relations",
        json={"type": type, "ticket_id": other["id"]},
        headers=api.headers(DEV),
    )
    assert response.status_code == 201, response.text
    relation_id: str = response.json()["id"]
    return relation_id


async def _unrelate(api: Any, ticket: dict[str, Any], relation_id: str) -> None:
    response = await api.client.delete(
        f"/api/v1/tickets/{ticket['id']}/relations/{relation_id}", headers=api.headers(DEV)
    )
    assert response.status_code == 204, response.text


async def _delete_or_restore(api: Any, ticket: dict[str, Any], *, restore: bool) -> None:
    url = f"/api/v1/tickets/{ticket['id']}"
    if restore:
        response = await api.client.post(f"{url}/restore", headers=api.headers(OWNER))
    else:
        response = await api.client.delete(url, headers=api.headers(OWNER))
    assert response.status_code in (200, 204), response.text


async def _open_blockers(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT key, open_blockers FROM tickets.tickets WHERE key LIKE 'PL-%'")
    return {row["key"]: row["open_blockers"] for row in rows}


async def test_open_blockers_follows_relations_transitions_and_deletes(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    """`is=blocked` reads `tickets.open_blockers`, which the triggers of migration 0005 keep
    through every write the API makes."""
    tickets_api.projects.add("PL", ROLES)
    a, b, c, d = [(await tickets_api.create(REPORTER, "PL", title=n)).json() for n in "abcd"]

    async def expect(**blocked: int) -> None:
        counts = {t["key"]: blocked.get(t["title"], 0) for t in (a, b, c, d)}
        assert await _open_blockers(superuser_db) == counts
        assert await listed(tickets_api, "is=blocked") == [k for k, n in counts.items() if n]

    async def moves(ticket: dict[str, Any], *steps: str) -> None:
        for to in steps:
            resolution = {"resolution": "fixed"} if to == "closed" else {}
            response = await move(tickets_api, ticket["id"], to, **resolution)
            assert response.status_code == 200, response.text

    await expect()
    a_blocks_b = await _relate(tickets_api, a, "blocks", b)
    await expect(b=1)
    c_blocks_b = await _relate(tickets_api, b, "blocked_by", c)  # stored as c blocks b
    c_blocks_d = await _relate(tickets_api, d, "blocked_by", c)
    await _relate(tickets_api, a, "relates_to", d)  # not a blocker
    await _relate(tickets_api, a, "duplicates", c)
    await expect(b=2, d=1)

    # A blocker that finishes unblocks, one that reopens blocks again; moves within the
    # unfinished statuses or within the done category change nothing.
    await moves(c, "in_progress")
    await expect(b=2, d=1)
    await moves(c, "done")
    await expect(b=1)
    await moves(c, "closed")
    await expect(b=1)
    await moves(c, "open")
    await expect(b=2, d=1)
    await moves(c, "closed")
    await expect(b=1)
    # A finished blocker's relation goes without a count to take back, and one made to
    # it adds none; reopened, it blocks only through the relations it then has.
    await _unrelate(tickets_api, d, c_blocks_d)
    await expect(b=1)
    c_blocks_d = await _relate(tickets_api, c, "blocks", d)
    await expect(b=1)
    await moves(c, "open")
    await expect(b=2, d=1)

    # A deleted blocker does not count until restored; a deleted blocked ticket keeps its
    # count but is not listed.
    await _delete_or_restore(tickets_api, c, restore=False)
    await expect(b=1)
    await _delete_or_restore(tickets_api, c, restore=True)
    await expect(b=2, d=1)
    await _delete_or_restore(tickets_api, d, restore=False)
    assert (await _open_blockers(superuser_db))[d["key"]] == 1
    assert await listed(tickets_api, "is=blocked") == [b["key"]]
    await _delete_or_restore(tickets_api, d, restore=True)
    await expect(b=2, d=1)

    # Removed from either side.
    await _unrelate(tickets_api, b, a_blocks_b)
    await expect(b=1, d=1)
    await _unrelate(tickets_api, c, c_blocks_b)
    await _unrelate(tickets_api, d, c_blocks_d)
    await expect()
