from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from bugtracker_shared.permissions import ROLE_PERMISSIONS, ProjectRole

pytestmark = pytest.mark.integration


async def test_creator_becomes_owner_and_sees_the_project_by_id_and_key(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    project = await projects_api.create_project(owner, "BUG")
    assert project["key"] == "BUG"

    for ref in (project["id"], "BUG", "bug"):
        got = await projects_api.client.get(
            f"/api/v1/projects/{ref}", headers=projects_api.headers(owner)
        )
        assert got.status_code == 200
        assert got.json()["id"] == project["id"]

    me = await projects_api.client.get(
        f"/api/v1/projects/{project['id']}/members/me", headers=projects_api.headers(owner)
    )
    assert me.status_code == 200
    assert me.json()["role"] == "owner"
    assert set(me.json()["permissions"]) == set(ROLE_PERMISSIONS[ProjectRole.OWNER])

    members = await projects_api.client.get(
        f"/api/v1/projects/{project['id']}/members", headers=projects_api.headers(owner)
    )
    assert [(m["user_id"], m["display_name"], m["role"]) for m in members.json()["items"]] == [
        (str(owner), "Olive", "owner")
    ]


async def test_duplicate_key_is_409_and_bad_key_is_422(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    await projects_api.create_project(owner, "BUG")
    again = await projects_api.client.post(
        "/api/v1/projects", json={"key": "BUG", "name": "x"}, headers=projects_api.headers(owner)
    )
    assert again.status_code == 409
    assert again.json()["code"] == "project_key_taken"
    for key in ("b", "bug", "1BUG", "TOOLONGKEY12"):
        bad = await projects_api.client.post(
            "/api/v1/projects", json={"key": key, "name": "x"}, headers=projects_api.headers(owner)
        )
        assert bad.status_code == 422, key


async def test_non_members_get_404_for_the_project_and_its_members(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    stranger = projects_api.auth.add("Sam")
    project = await projects_api.create_project(owner)
    for path in ("", "/members", "/members/me", f"/members/{owner}"):
        response = await projects_api.client.get(
            f"/api/v1/projects/{project['id']}{path}", headers=projects_api.headers(stranger)
        )
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    unknown = await projects_api.client.get(
        f"/api/v1/projects/{uuid.uuid4()}", headers=projects_api.headers(stranger)
    )
    assert unknown.json()["detail"] == "No such project."


async def test_admin_sees_every_project_without_membership(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    project = await projects_api.create_project(owner)
    admin = uuid.uuid4()
    me = await projects_api.client.get(
        f"/api/v1/projects/{project['id']}/members/me", headers=projects_api.headers(admin, "admin")
    )
    assert me.status_code == 200
    assert me.json()["role"] is None
    assert "owner.manage" in me.json()["permissions"]


async def test_add_member_then_they_see_it_and_events_are_in_the_outbox(
    projects_api: Any, superuser_db: asyncpg.Connection
) -> None:
    owner = projects_api.auth.add("Olive")
    dev = projects_api.auth.add("Dave")
    project = await projects_api.create_project(owner)
    added = await projects_api.client.post(
        f"/api/v1/projects/{project['id']}/members",
        json={"user_id": str(dev), "role": "developer"},
        headers=projects_api.headers(owner),
    )
    assert added.status_code == 201
    assert added.json()["display_name"] == "Dave"
    assert added.json()["email"] == "dave@example.com"
    listed = await projects_api.client.get("/api/v1/projects", headers=projects_api.headers(dev))
    assert [p["key"] for p in listed.json()["items"]] == ["BUG"]
    member = await projects_api.client.get(
        f"/api/v1/projects/BUG/members/{dev}", headers=projects_api.headers(owner)
    )
    assert member.json()["role"] == "developer"
    twice = await projects_api.client.post(
        f"/api/v1/projects/{project['id']}/members",
        json={"user_id": str(dev), "role": "viewer"},
        headers=projects_api.headers(owner),
    )
    assert twice.status_code == 409
    keys = await superuser_db.fetch(
        "SELECT routing_key FROM projects.outbox WHERE aggregate_id = $1 ORDER BY position",
        project["id"],
    )
    assert [row["routing_key"] for row in keys] == ["project.created", "project.member_added"]


@pytest.mark.parametrize(
    ("adder_role", "granted", "status"),
    [
        ("developer", "viewer", 403),
        ("maintainer", "developer", 201),
        ("maintainer", "owner", 403),
        ("owner", "owner", 201),
    ],
)
async def test_who_may_grant_which_role(
    projects_api: Any, adder_role: str, granted: str, status: int
) -> None:
    owner = projects_api.auth.add("Olive")
    adder = projects_api.auth.add("Adam")
    target = projects_api.auth.add("Tess")
    project = await projects_api.create_project(owner)
    if adder_role != "owner":
        await projects_api.client.post(
            f"/api/v1/projects/{project['id']}/members",
            json={"user_id": str(adder), "role": adder_role},
            headers=projects_api.headers(owner),
        )
    else:
        adder = owner
    response = await projects_api.client.post(
        f"/api/v1/projects/{project['id']}/members",
        json={"user_id": str(target), "role": granted},
        headers=projects_api.headers(adder),
    )
    assert response.status_code == status, response.text


async def test_unknown_or_inactive_user_cannot_be_added(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    gone = projects_api.auth.add("Gina", is_active=False)
    project = await projects_api.create_project(owner)
    for user_id in (uuid.uuid4(), gone):
        response = await projects_api.client.post(
            f"/api/v1/projects/{project['id']}/members",
            json={"user_id": str(user_id), "role": "viewer"},
            headers=projects_api.headers(owner),
        )
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_user"


async def test_project_list_pages_with_a_cursor_and_link_header(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    for key in ("AA", "BB", "CC", "DD", "EE"):
        await projects_api.create_project(owner, key)
    seen: list[str] = []
    url: str | None = "/api/v1/projects?limit=2"
    while url:
        page = await projects_api.client.get(url, headers=projects_api.headers(owner))
        assert page.status_code == 200
        seen += [p["key"] for p in page.json()["items"]]
        link = page.headers.get("link")
        assert (link is None) == (page.json()["next_cursor"] is None)
        url = link[1 : link.index(">")] if link else None
    assert seen == ["AA", "BB", "CC", "DD", "EE"]
    bad = await projects_api.client.get(
        "/api/v1/projects?cursor=%%%", headers=projects_api.headers(owner)
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
