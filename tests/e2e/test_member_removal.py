"""Someone removed from a project learns nothing more of it: tickets unassigns them (with
history and an event) and drops them as a watcher, so later changes notify the others
but not them."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e


def test_a_removed_member_is_unassigned_unwatched_and_no_longer_notified(
    api: httpx.Client, settle_tickets_view: Callable[[str], None]
) -> None:
    _, owner = register_and_login(api, "olga")
    dev_id, dev = register_and_login(api, "devon")
    watcher_id, watcher = register_and_login(api, "wally")
    key = "R" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "Removal"}, headers=owner)
    assert project.status_code == 201, project.text
    for user_id, role in ((dev_id, "developer"), (watcher_id, "viewer")):
        added = api.post(
            f"/api/v1/projects/{key}/members",
            json={"user_id": user_id, "role": role},
            headers=owner,
        )
        assert added.status_code == 201, added.text
    settle_tickets_view(project.json()["id"])
    tickets = [
        api.post(
            f"/api/v1/projects/{key}/tickets",
            json={"title": f"Bug {n}", "assignee_id": dev_id},
            headers=owner,
        ).json()
        for n in range(3)
    ]
    url = f"/api/v1/tickets/{tickets[0]['key']}"
    assert api.put(f"{url}/watchers/me", headers=watcher).status_code == 200
    assert dev_id in api.get(f"{url}/watchers", headers=owner).json()["items"]

    assert api.delete(f"/api/v1/projects/{key}/members/{dev_id}", headers=owner).status_code == 204

    for ticket in tickets:
        wait_until(
            lambda t=ticket: api.get(f"/api/v1/tickets/{t['key']}", headers=owner).json(),
            lambda found: found["assignee_id"] is None,
        )
    history = api.get(f"{url}/history", headers=owner).json()["items"]
    assert {"field": "assignee_id", "from": dev_id, "to": None} in [
        {k: item[k] for k in ("field", "from", "to")} for item in history
    ]
    assert dev_id not in api.get(f"{url}/watchers", headers=owner).json()["items"]

    assert (
        api.post(f"{url}/comments", json={"body": "still broken"}, headers=owner).status_code == 201
    )
    wait_until(
        lambda: api.get("/api/v1/notifications", headers=watcher).json()["items"],
        lambda items: any(n["type"] == "ticket.commented" for n in items),
    )
    devs = api.get("/api/v1/notifications", headers=dev).json()["items"]
    assert not [n for n in devs if n["type"] == "ticket.commented"]
