"""Bulk changes (docs/adr/0039): all or nothing, per-ticket errors, and each changed
ticket exactly as a single change would leave it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

OWNER, MAINTAINER, DEV, REPORTER, VIEWER, STRANGER = (uuid.uuid4() for _ in range(6))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


async def bulk(
    api: Any, who: uuid.UUID, tickets: list[str], project: str = "BK", **set_: Any
) -> Any:
    return await api.client.post(
        f"/api/v1/projects/{project}/tickets/bulk",
        json={"tickets": tickets, "set": set_},
        headers=api.headers(who),
    )


async def snapshot(db: asyncpg.Connection) -> tuple[Any, ...]:
    return (
        await db.fetch(
            "SELECT id, version, status, assignee_id, labels FROM tickets.tickets ORDER BY id"
        ),
        await db.fetchval("SELECT count(*) FROM tickets.history"),
        await db.fetchval("SELECT count(*) FROM tickets.outbox"),
        await db.fetchval("SELECT count(*) FROM tickets.watchers"),
    )


async def test_a_bulk_change_gives_each_ticket_its_version_history_and_events_in_order(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BK", ROLES)
    made = [
        (await tickets_api.create(REPORTER, "BK", labels=["old", "ui"])).json() for _ in range(5)
    ]
    refs = [made[3]["key"], made[0]["id"], made[4]["key"].lower(), made[1]["key"], made[2]["id"]]
    before = await superuser_db.fetchval("SELECT max(position) FROM tickets.outbox")

    response = await bulk(
        tickets_api,
        DEV,
        refs,
        assignee_id=str(DEV),
        priority="high",
        status="in_progress",
        labels_add=["1.2", "ui"],
        labels_remove=["old"],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [t["key"] for t in items] == [made[i]["key"] for i in (3, 0, 4, 1, 2)]
    for ticket in items:
        assert ticket["version"] == 2
        assert (ticket["assignee_id"], ticket["priority"], ticket["status"]) == (
            str(DEV),
            "high",
            "in_progress",
        )
        assert ticket["labels"] == ["ui", "1.2"]

    history = await tickets_api.client.get(
        f"/api/v1/tickets/{made[0]['id']}/history", headers=tickets_api.headers(VIEWER)
    )
    assert {
        (h["field"], json.dumps(h["from"]), json.dumps(h["to"])) for h in history.json()["items"]
    } == {
        ("status", '"open"', '"in_progress"'),
        ("assignee_id", "null", json.dumps(str(DEV))),
        ("priority", '"medium"', '"high"'),
        ("labels", '["old", "ui"]', '["ui", "1.2"]'),
    }
    rows = await superuser_db.fetch(
        "SELECT aggregate_id, routing_key, payload FROM tickets.outbox WHERE position > $1"
        " ORDER BY position",
        before,
    )
    # Ticket by ticket in the request's order, each: updated, assigned, status_changed.
    assert [(r["aggregate_id"], r["routing_key"]) for r in rows] == [
        (made[i]["id"], name)
        for i in (3, 0, 4, 1, 2)
        for name in ("ticket.updated", "ticket.assigned", "ticket.status_changed")
    ]
    payloads = [json.loads(r["payload"]) for r in rows]
    assert {p["sequence"] for p in payloads} == {2}
    assigned = [p["data"] for p in payloads if p["type"].endswith("ticket.assigned.v1")]
    assert len({a["bulk"]["id"] for a in assigned}) == 1
    assert {a["bulk"]["size"] for a in assigned} == {5}
    assert "bulk" not in payloads[0]["data"]
    assert str(DEV) in assigned[0]["watchers"]

    # The same change again changes nothing: no version, no history, no event.
    last = await superuser_db.fetchval("SELECT max(position) FROM tickets.outbox")
    again = await bulk(tickets_api, DEV, refs, priority="high")
    assert again.status_code == 200
    assert {t["version"] for t in again.json()["items"]} == {2}
    assert await superuser_db.fetchval("SELECT max(position) FROM tickets.outbox") == last


async def test_one_ticket_that_cannot_take_the_change_changes_nothing(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BK", ROLES)
    tickets_api.projects.add("XO", {DEV: ProjectRole.DEVELOPER})
    good = (await tickets_api.create(REPORTER, "BK")).json()
    closed = (await tickets_api.create(REPORTER, "BK")).json()
    await tickets_api.client.post(
        f"/api/v1/tickets/{closed['id']}/transitions",
        json={"to": "closed", "resolution": "invalid"},
        headers=tickets_api.headers(DEV),
    )
    deleted = (await tickets_api.create(REPORTER, "BK")).json()
    await tickets_api.client.delete(
        f"/api/v1/tickets/{deleted['id']}", headers=tickets_api.headers(OWNER)
    )
    foreign = (await tickets_api.create(DEV, "XO")).json()
    before = await snapshot(superuser_db)

    response = await bulk(
        tickets_api,
        DEV,
        [good["key"], closed["key"], deleted["key"], foreign["key"], "BK-999", "not a ticket"],
        status="in_progress",
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "bulk_rejected"
    assert [(e["ticket"], e["code"]) for e in body["errors"]] == [
        (closed["key"], "invalid_transition"),
        (deleted["key"], "not_found"),
        (foreign["key"], "not_found"),
        ("BK-999", "not_found"),
        ("not a ticket", "not_found"),
    ]
    assert await snapshot(superuser_db) == before

    # Closing needs a resolution: every ticket says so, nothing changes.
    refused = await bulk(tickets_api, DEV, [good["key"]], status="closed")
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["resolution_required"]
    # A label too many on one ticket.
    many = (await tickets_api.create(REPORTER, "BK", labels=[f"l{n}" for n in range(20)])).json()
    before = await snapshot(superuser_db)
    refused = await bulk(tickets_api, DEV, [good["key"], many["key"]], labels_add=["extra"])
    assert [(e["ticket"], e["code"]) for e in refused.json()["errors"]] == [
        (many["key"], "too_many_labels")
    ]
    assert await snapshot(superuser_db) == before


async def test_dependencies_are_judged_after_the_whole_change(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BK", ROLES)
    epic = (await tickets_api.create(REPORTER, "BK", title="epic")).json()
    children = [
        (await tickets_api.create(REPORTER, "BK", parent_id=epic["id"])).json() for _ in range(2)
    ]
    before = await snapshot(superuser_db)
    alone = await bulk(
        tickets_api, DEV, [epic["key"], children[0]["key"]], status="closed", resolution="wont_fix"
    )
    assert alone.status_code == 422
    [error] = alone.json()["errors"]
    assert (error["ticket"], error["code"]) == (epic["key"], "unfinished_dependencies")
    assert await snapshot(superuser_db) == before
    # The epic listed first, its children after: judged together, allowed.
    together = await bulk(
        tickets_api,
        DEV,
        [epic["key"], *(c["key"] for c in children)],
        status="closed",
        resolution="wont_fix",
    )
    assert together.status_code == 200, together.text
    assert {t["resolution"] for t in together.json()["items"]} == {"wont_fix"}


@pytest.mark.parametrize(
    ("who", "status"),
    [(OWNER, 200), (MAINTAINER, 200), (DEV, 200), (REPORTER, 403), (VIEWER, 403), (STRANGER, 404)],
)
async def test_who_may_change_tickets_in_bulk(
    tickets_api: Any, who: uuid.UUID, status: int
) -> None:
    tickets_api.projects.add("BK", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BK")).json()
    response = await bulk(tickets_api, who, [ticket["key"]], priority="low")
    assert response.status_code == status, response.text


async def test_an_assignee_who_is_not_a_member_or_a_bad_milestone_refuses_the_whole_request(
    tickets_api: Any,
) -> None:
    tickets_api.projects.add("BK", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BK")).json()
    outsider = await bulk(tickets_api, DEV, [ticket["key"]], assignee_id=str(STRANGER))
    assert outsider.status_code == 422
    assert outsider.json()["code"] == "assignee_not_member"
    milestone = await bulk(tickets_api, DEV, [ticket["key"]], milestone_id=str(uuid.uuid4()))
    assert milestone.status_code == 422
    assert milestone.json()["code"] == "invalid_milestone"


@pytest.mark.parametrize(
    "body",
    [
        {"tickets": ["BK-1"], "set": {}},
        {"tickets": [], "set": {"priority": "low"}},
        {"tickets": [f"BK-{n}" for n in range(1, 102)], "set": {"priority": "low"}},
        {"tickets": ["BK-1", "bk-1"], "set": {"priority": "low"}},
        {"tickets": ["BK-1"], "set": {"resolution": "fixed"}},
        {"tickets": ["BK-1"], "set": {"priority": None}},
        {"tickets": ["BK-1"], "set": {"priority": "urgent"}},
        {"tickets": ["BK-1"], "set": {"title": "x"}},
        {"tickets": ["BK-1"], "set": {"priority": "low"}, "extra": 1},
        {"tickets": "BK-1", "set": {"priority": "low"}},
    ],
)
async def test_malformed_bulk_requests_are_422(tickets_api: Any, body: dict[str, Any]) -> None:
    tickets_api.projects.add("BK", ROLES)
    response = await tickets_api.client.post(
        "/api/v1/projects/BK/tickets/bulk", json=body, headers=tickets_api.headers(DEV)
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
