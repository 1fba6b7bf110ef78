"""A ticket's working life through the gateway: workflow, comments with a mention,
watchers, history, and the notifications each step causes for the right people."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e


def notifications(api: httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/v1/notifications", headers=headers).json()["items"]
    return items


def test_a_ticket_from_report_to_done(api: httpx.Client) -> None:
    reporter_id, reporter = register_and_login(api, "rita")
    dev_id, dev = register_and_login(api, "devon")
    watcher_id, watcher = register_and_login(api, "wally")
    key = "F" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "Flow"}, headers=reporter)
    for user_id, role in ((dev_id, "developer"), (watcher_id, "viewer")):
        added = api.post(
            f"/api/v1/projects/{project.json()['id']}/members",
            json={"user_id": user_id, "role": role},
            headers=reporter,
        )
        assert added.status_code == 201
    ticket = api.post(
        f"/api/v1/projects/{key}/tickets",
        json={"title": "Export loses rows", "description": "Steps: *export*", "priority": "high"},
        headers=reporter | {"Idempotency-Key": "flow-1"},
    ).json()
    url = f"/api/v1/tickets/{ticket['key']}"
    assert api.put(f"{url}/watchers/me", headers=watcher).status_code == 200

    offered = api.get(f"{url}/transitions", headers=dev).json()
    assert {t["to"] for t in offered} == {"in_progress", "closed"}
    moved = api.post(
        f"{url}/transitions",
        json={"to": "in_progress"},
        headers=dev | {"If-Match": api.get(url, headers=dev).headers["etag"]},
    )
    assert moved.status_code == 200, moved.text
    stale = api.post(f"{url}/transitions", json={"to": "done"}, headers=dev | {"If-Match": '"1"'})
    assert stale.status_code == 412

    comment = api.post(
        f"{url}/comments", json={"body": "Found it, @rita: a rounding bug"}, headers=dev
    )
    assert comment.status_code == 201
    assert comment.json()["mentions"] == [reporter_id]
    done = api.post(f"{url}/transitions", json={"to": "done"}, headers=dev)
    assert done.json()["resolution"] == "fixed"

    # Rita reported the ticket: she hears of both status changes and is mentioned once
    # (a mention replaces the plain comment notice); Wally watches; Devon acted himself.
    rita = wait_until(lambda: notifications(api, reporter), lambda items: len(items) >= 3)
    assert sorted(n["type"] for n in rita) == [
        "ticket.mentioned",
        "ticket.status_changed",
        "ticket.status_changed",
    ]
    wally = wait_until(lambda: notifications(api, watcher), lambda items: len(items) >= 3)
    assert (
        sorted(n["type"] for n in wally)
        == [
            "project.member_added",
            "ticket.commented",
            "ticket.status_changed",
            "ticket.status_changed",
        ][-len(wally) :]
    )
    assert all(n["actor_id"] != watcher_id for n in wally)
    assert not [n for n in notifications(api, dev) if n["type"].startswith("ticket.")]

    history = api.get(f"{url}/history", headers=watcher).json()["items"]
    assert [(h["field"], h["to"]) for h in history] == [
        ("status", "in_progress"),
        ("status", "done"),
        ("resolution", "fixed"),
    ]
    mine = api.get("/api/v1/tickets?reporter=" + reporter_id + "&status=done", headers=reporter)
    assert [t["key"] for t in mine.json()["items"]] == [ticket["key"]]
