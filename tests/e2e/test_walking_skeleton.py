"""The vertical slice, through the gateway: register, log in, project, member, ticket,
assignment, and the notification that the assignment causes."""

from __future__ import annotations

import uuid

import httpx
import pytest
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if code:
        assert body["code"] == code


def test_assignment_notifies_the_assignee_once_and_nobody_else(api: httpx.Client) -> None:
    ann_id, ann = register_and_login(api, "ann")
    bob_id, bob = register_and_login(api, "bob")

    me = api.get("/api/v1/users/me", headers=ann)
    assert me.status_code == 200
    assert me.json()["id"] == ann_id

    key = "E" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "E2E"}, headers=ann)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    assert [p["key"] for p in api.get("/api/v1/projects", headers=ann).json()["items"]] == [key]

    added = api.post(
        f"/api/v1/projects/{project_id}/members",
        json={"user_id": bob_id, "role": "developer"},
        headers=ann,
    )
    assert added.status_code == 201, added.text
    bob_role = api.get(f"/api/v1/projects/{key}/members/me", headers=bob)
    assert bob_role.json()["role"] == "developer"

    ticket = api.post(
        f"/api/v1/projects/{key}/tickets", json={"title": "Crash on save"}, headers=ann
    )
    assert ticket.status_code == 201, ticket.text
    assert ticket.json()["key"] == f"{key}-1"
    assert api.get(f"/api/v1/tickets/{key}-1", headers=bob).json()["id"] == ticket.json()["id"]

    assigned = api.put(
        f"/api/v1/tickets/{ticket.json()['id']}/assignee",
        json={"assignee_id": bob_id},
        headers=ann,
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee_id"] == bob_id

    # Bob is told twice: added to the project, then assigned.
    notifications = wait_until(
        lambda: api.get("/api/v1/notifications", headers=bob).json()["items"],
        lambda items: len(items) >= 2,
    )
    assert sorted(n["type"] for n in notifications) == ["project.member_added", "ticket.assigned"]
    note = next(n for n in notifications if n["type"] == "ticket.assigned")
    assert note["ticket_key"] == f"{key}-1"
    assert note["actor_id"] == ann_id
    assert note["read_at"] is None
    assert api.get("/api/v1/notifications/unread-count", headers=bob).json() == {"count": 2}
    # The event that notified Bob is fully processed, and it notified nobody else.
    assert api.get("/api/v1/notifications", headers=ann).json()["items"] == []

    listed = api.get(f"/api/v1/projects/{key}/tickets?assignee=me", headers=bob)
    assert [t["key"] for t in listed.json()["items"]] == [f"{key}-1"]


def test_requests_without_a_valid_token_are_refused(api: httpx.Client) -> None:
    assert_problem(api.get("/api/v1/projects"), 401)
    garbage = api.get("/api/v1/projects", headers={"Authorization": "Bearer garbage"})
    assert_problem(garbage, 401)
    assert garbage.headers["www-authenticate"].startswith("Bearer")


def test_non_members_see_404_and_non_members_cannot_be_assigned(api: httpx.Client) -> None:
    _, owner = register_and_login(api, "olive")
    stranger_id, stranger = register_and_login(api, "sam")
    key = "N" + uuid.uuid4().hex[:6].upper()
    project_id = api.post(
        "/api/v1/projects", json={"key": key, "name": "Private"}, headers=owner
    ).json()["id"]
    ticket = api.post(f"/api/v1/projects/{key}/tickets", json={"title": "t"}, headers=owner)

    assert_problem(api.get(f"/api/v1/projects/{project_id}", headers=stranger), 404, "not_found")
    assert_problem(api.get(f"/api/v1/tickets/{key}-1", headers=stranger), 404, "not_found")
    assert_problem(
        api.put(
            f"/api/v1/tickets/{ticket.json()['id']}/assignee",
            json={"assignee_id": stranger_id},
            headers=owner,
        ),
        422,
        "assignee_not_member",
    )


def test_malformed_json_is_a_problem(api: httpx.Client) -> None:
    _, owner = register_and_login(api, "mal")
    response = api.post(
        "/api/v1/projects",
        content=b'{"key": "AB", "name": ',
        headers=owner | {"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")
    typo = api.post("/api/v1/projects", json={"key": "AB", "nme": "x"}, headers=owner)
    assert_problem(typo, 422, "validation_error")


def test_request_id_is_kept_end_to_end(api: httpx.Client) -> None:
    response = api.get("/api/v1/projects", headers={"X-Request-ID": "e2e-request-0001"})
    assert response.headers["x-request-id"] == "e2e-request-0001"
    assert response.json()["request_id"] == "e2e-request-0001"
