from __future__ import annotations

import asyncio
import json
import uuid
from enum import StrEnum
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

OWNER, DEV, REPORTER, VIEWER, MAINTAINER = (uuid.uuid4() for _ in range(5))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


class Status(StrEnum):
    """The statuses of the default workflow (docs/adr/0040)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    IN_REVIEW = "in_review"
    DONE = "done"
    CLOSED = "closed"


# The workflow every project had when it was fixed in code: the default workflow must keep
# it exactly (a project that never changed its workflow sees no change).
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.OPEN: (Status.IN_PROGRESS, Status.CLOSED),
    Status.IN_PROGRESS: (Status.OPEN, Status.IN_REVIEW, Status.DONE, Status.CLOSED),
    Status.IN_REVIEW: (Status.IN_PROGRESS, Status.DONE, Status.CLOSED),
    Status.DONE: (Status.OPEN, Status.CLOSED),
    Status.CLOSED: (Status.OPEN,),
}
# How a developer brings a fresh ticket to each status.
PATH_TO = {
    Status.OPEN: [],
    Status.IN_PROGRESS: [("in_progress", None)],
    Status.IN_REVIEW: [("in_progress", None), ("in_review", None)],
    Status.DONE: [("in_progress", None), ("done", None)],
    Status.CLOSED: [("closed", "duplicate")],
}


async def move(api: Any, who: uuid.UUID, ticket_id: str, to: str, resolution: str | None) -> Any:
    body: dict[str, Any] = {"to": to}
    if resolution:
        body["resolution"] = resolution
    return await api.client.post(
        f"/api/v1/tickets/{ticket_id}/transitions", json=body, headers=api.headers(who)
    )


async def ticket_in(api: Any, status: Status) -> str:
    ticket = (await api.create(REPORTER, "WF")).json()
    for to, resolution in PATH_TO[status]:
        assert (await move(api, DEV, ticket["id"], to, resolution)).status_code == 200
    return str(ticket["id"])


CASES = [
    (start, target, who)
    for start in Status
    for target in Status
    if target is not start
    for who in ("developer", "reporter", "viewer")
]


@pytest.mark.parametrize(("start", "target", "who"), CASES)
async def test_workflow_table_by_role(
    tickets_api: Any, start: Status, target: Status, who: str
) -> None:
    tickets_api.projects.add("WF", ROLES)
    ticket_id = await ticket_in(tickets_api, start)
    user = {"developer": DEV, "reporter": REPORTER, "viewer": VIEWER}[who]
    resolution = "wont_fix" if target is Status.CLOSED else None
    response = await move(tickets_api, user, ticket_id, target.value, resolution)
    allowed_by_table = target in TRANSITIONS[start]
    may = who == "developer" or (who == "reporter" and target in (Status.CLOSED, Status.OPEN))
    if not allowed_by_table:
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "invalid_transition"
        assert response.json()["allowed"] == [s.value for s in TRANSITIONS[start]]
    elif may:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == target.value
    else:
        assert response.status_code == 403, response.text
    listed = await tickets_api.client.get(
        f"/api/v1/tickets/{ticket_id}/transitions", headers=tickets_api.headers(user)
    )
    offered = {t["to"] for t in listed.json()}
    assert (target.value in offered) == (allowed_by_table and may and response.status_code != 200)


async def test_resolutions_follow_the_rules(tickets_api: Any) -> None:
    tickets_api.projects.add("WF", ROLES)
    ticket_id = await ticket_in(tickets_api, Status.IN_PROGRESS)
    done = await move(tickets_api, DEV, ticket_id, "done", None)
    assert done.json()["resolution"] == "fixed"
    needs = await move(tickets_api, DEV, ticket_id, "closed", None)
    assert needs.status_code == 422
    assert needs.json()["code"] == "resolution_required"
    closed = await move(tickets_api, DEV, ticket_id, "closed", "cannot_reproduce")
    assert closed.json()["resolution"] == "cannot_reproduce"
    reopened = await move(tickets_api, REPORTER, ticket_id, "open", None)
    assert reopened.json()["resolution"] is None
    bogus = await move(tickets_api, DEV, ticket_id, "closed", "because")
    assert bogus.status_code == 422


async def test_transition_with_a_comment_records_both(tickets_api: Any) -> None:
    tickets_api.projects.add("WF", ROLES)
    ticket_id = await ticket_in(tickets_api, Status.OPEN)
    response = await tickets_api.client.post(
        f"/api/v1/tickets/{ticket_id}/transitions",
        json={"to": "in_progress", "comment": "On it"},
        headers=tickets_api.headers(DEV),
    )
    assert response.status_code == 200
    comments = await tickets_api.client.get(
        f"/api/v1/tickets/{ticket_id}/comments", headers=tickets_api.headers(DEV)
    )
    assert [c["body"] for c in comments.json()["items"]] == ["On it"]


async def test_concurrent_patches_with_one_if_match_let_one_win(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BUG")).json()
    url = f"/api/v1/tickets/{ticket['id']}"
    headers = tickets_api.headers(DEV) | {"If-Match": '"1"'}
    first, second = await asyncio.gather(
        tickets_api.client.patch(url, json={"title": "A"}, headers=headers),
        tickets_api.client.patch(url, json={"title": "B"}, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    precondition = first if first.status_code == 412 else second
    assert precondition.json()["code"] == "precondition_failed"


async def test_patch_rules_and_field_history(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BUG", labels=["ui"])).json()
    url = f"/api/v1/tickets/{ticket['id']}"
    viewer = await tickets_api.client.patch(
        url, json={"title": "x"}, headers=tickets_api.headers(VIEWER)
    )
    assert viewer.status_code == 403
    own = await tickets_api.client.patch(
        url,
        json={"title": "Renamed", "priority": "critical", "due_date": "2027-01-31"},
        headers=tickets_api.headers(REPORTER),
    )
    assert own.status_code == 200, own.text
    assert own.json()["version"] == 2
    cleared = await tickets_api.client.patch(
        url, json={"due_date": None, "labels": []}, headers=tickets_api.headers(DEV)
    )
    assert cleared.json()["due_date"] is None
    null_title = await tickets_api.client.patch(
        url, json={"title": None}, headers=tickets_api.headers(DEV)
    )
    assert null_title.status_code == 422
    await tickets_api.client.put(
        f"{url}/assignee", json={"assignee_id": str(DEV)}, headers=tickets_api.headers(DEV)
    )
    await move(tickets_api, DEV, ticket["id"], "in_progress", None)

    history = await tickets_api.client.get(f"{url}/history", headers=tickets_api.headers(VIEWER))
    entries = [(h["field"], h["from"], h["to"], h["actor_id"]) for h in history.json()["items"]]
    assert entries == [
        ("title", "Login fails", "Renamed", str(REPORTER)),
        ("priority", "medium", "critical", str(REPORTER)),
        ("due_date", None, "2027-01-31", str(REPORTER)),
        ("labels", ["ui"], [], str(DEV)),
        ("due_date", "2027-01-31", None, str(DEV)),
        ("assignee_id", None, str(DEV), str(DEV)),
        ("status", "open", "in_progress", str(DEV)),
    ]
    paged = await tickets_api.client.get(
        f"{url}/history?limit=3", headers=tickets_api.headers(VIEWER)
    )
    assert len(paged.json()["items"]) == 3
    assert paged.json()["next_cursor"]


async def test_every_change_is_one_event_with_the_ticket_version(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("EV", ROLES)
    ticket = (await tickets_api.create(REPORTER, "EV")).json()
    url = f"/api/v1/tickets/{ticket['id']}"
    await tickets_api.client.patch(url, json={"title": "T2"}, headers=tickets_api.headers(DEV))
    await tickets_api.client.put(
        f"{url}/assignee", json={"assignee_id": str(DEV)}, headers=tickets_api.headers(DEV)
    )
    await move(tickets_api, DEV, ticket["id"], "in_progress", None)
    await tickets_api.client.post(
        f"{url}/comments", json={"body": "hi"}, headers=tickets_api.headers(VIEWER)
    )
    await tickets_api.client.delete(url, headers=tickets_api.headers(MAINTAINER))
    rows = await superuser_db.fetch(
        "SELECT routing_key, payload FROM tickets.outbox WHERE aggregate_id = $1 ORDER BY position",
        ticket["id"],
    )
    events = [(r["routing_key"], json.loads(r["payload"])) for r in rows]
    assert [name for name, _ in events] == [
        "ticket.created",
        "ticket.updated",
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.commented",
        "ticket.deleted",
    ]
    assert [e["sequence"] for _, e in events] == [1, 2, 3, 4, 4, 5]
    updated = events[1][1]
    assert updated["data"]["changes"] == {"title": {"from": "Login fails", "to": "T2"}}
    assert updated["data"]["title"] == "T2"
    commented = events[4][1]["data"]
    assert commented["comment"]["author_id"] == str(VIEWER)
    assert set(commented["watchers"]) == {str(REPORTER), str(DEV), str(VIEWER)}


async def test_deleted_tickets_vanish_until_restored(tickets_api: Any) -> None:
    tickets_api.projects.add("DEL", ROLES)
    ticket = (await tickets_api.create(REPORTER, "DEL", title="findme")).json()
    url = f"/api/v1/tickets/{ticket['id']}"
    assert (
        await tickets_api.client.delete(url, headers=tickets_api.headers(DEV))
    ).status_code == 403
    assert (
        await tickets_api.client.delete(url, headers=tickets_api.headers(MAINTAINER))
    ).status_code == 204
    assert (
        await tickets_api.client.get(url, headers=tickets_api.headers(OWNER))
    ).status_code == 404
    for query in ("", "?q=findme"):
        listed = await tickets_api.client.get(
            f"/api/v1/projects/DEL/tickets{query}", headers=tickets_api.headers(OWNER)
        )
        assert listed.json()["items"] == []
    restored = await tickets_api.client.post(
        f"{url}/restore", headers=tickets_api.headers(MAINTAINER)
    )
    assert restored.status_code == 200
    assert (
        await tickets_api.client.get(url, headers=tickets_api.headers(OWNER))
    ).status_code == 200
