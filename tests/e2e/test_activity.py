"""A project's activity feed through the gateway (docs/adr/0046): built from the events the
tickets and projects services publish, newest first, paginated, for members only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e


def feed(api: httpx.Client, key: str, who: dict[str, str], **params: Any) -> httpx.Response:
    return api.get(f"/api/v1/projects/{key}/activity", params=params, headers=who)


def entries(api: httpx.Client, key: str, who: dict[str, str]) -> list[dict[str, Any]]:
    response = feed(api, key, who, limit=100)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_feed_shows_a_projects_changes_newest_first_to_its_members_only(
    api: httpx.Client, settle_tickets_view: Callable[[str], None]
) -> None:
    owner_id, owner = register_and_login(api, "ada")
    dev_id, dev = register_and_login(api, "bob")
    viewer_id, viewer = register_and_login(api, "cyd")
    _, stranger = register_and_login(api, "eve")
    key = "A" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "Activity"}, headers=owner)
    assert project.status_code == 201, project.text
    added = api.post(
        f"/api/v1/projects/{key}/members",
        json={"user_id": dev_id, "role": "developer"},
        headers=owner,
    )
    assert added.status_code == 201, added.text
    settle_tickets_view(project.json()["id"])

    created = api.post(f"/api/v1/projects/{key}/tickets", json={"title": "Crash"}, headers=dev)
    assert created.status_code == 201, created.text
    ticket = created.json()["key"]
    url = f"/api/v1/tickets/{ticket}"
    steps = [
        api.patch(url, json={"priority": "high"}, headers=dev),
        api.post(f"{url}/comments", json={"body": "reproduced"}, headers=owner),
        api.put(f"{url}/assignee", json={"assignee_id": dev_id}, headers=dev),
        api.post(f"{url}/transitions", json={"to": "in_progress"}, headers=dev),
        api.post(
            f"/api/v1/projects/{key}/members",
            json={"user_id": viewer_id, "role": "viewer"},
            headers=owner,
        ),
    ]
    assert all(s.status_code in (200, 201) for s in steps), [s.text for s in steps]
    settle_tickets_view(project.json()["id"])

    expected = [
        ("member.added", None),
        ("ticket.transitioned", ticket),
        ("ticket.assigned", ticket),
        ("ticket.commented", ticket),
        ("ticket.updated", ticket),
        ("ticket.created", ticket),
        ("member.added", None),
    ]
    items = wait_until(
        lambda: entries(api, key, viewer),
        lambda items: len(items) >= len(expected),
    )
    assert [(i["kind"], i["ticket_key"]) for i in items] == expected
    summaries = [i["summary"] for i in items]
    assert summaries[:5] == [
        f"added {viewer_id} as viewer",
        "moved from open to in_progress",
        f"assigned to {dev_id}",
        "commented",
        "changed priority from medium to high",
    ]
    assert summaries[6] == f"added {dev_id} as developer"
    actors = [i["actor_id"] for i in items]
    assert actors == [owner_id, dev_id, dev_id, owner_id, dev_id, dev_id, owner_id]
    moments = [i["at"] for i in items]
    assert moments == sorted(moments, reverse=True)

    # A small limit walks every entry once, in the same order.
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = feed(api, key, viewer, **params)
        assert page.status_code == 200, page.text
        walked += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert walked == items

    # By id as by key; not for those outside the project.
    assert feed(api, project.json()["id"], dev).json()["items"] == items
    assert feed(api, key, stranger).status_code == 404

    # Someone who leaves sees it no more, and their leaving is in it.
    left = api.delete(f"/api/v1/projects/{key}/members/{viewer_id}", headers=viewer)
    assert left.status_code == 204, left.text
    settle_tickets_view(project.json()["id"])
    assert feed(api, key, viewer).status_code == 404
    latest = wait_until(
        lambda: entries(api, key, owner),
        lambda items: items[0]["kind"] == "member.removed",
    )[0]
    assert (latest["summary"], latest["actor_id"]) == ("left the project", viewer_id)


def test_a_deleted_tickets_entries_leave_the_feed(
    api: httpx.Client, settle_tickets_view: Callable[[str], None]
) -> None:
    _, owner = register_and_login(api, "flo")
    key = "D" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "Deletes"}, headers=owner)
    assert project.status_code == 201, project.text
    settle_tickets_view(project.json()["id"])
    kept, doomed = (
        api.post(f"/api/v1/projects/{key}/tickets", json={"title": t}, headers=owner).json()["key"]
        for t in ("kept", "doomed")
    )
    wait_until(lambda: entries(api, key, owner), lambda items: len(items) == 2)

    assert api.delete(f"/api/v1/tickets/{doomed}", headers=owner).status_code == 204

    assert [i["ticket_key"] for i in entries(api, key, owner)] == [kept]
