from __future__ import annotations

from typing import Any

import asyncpg
import pytest

pytestmark = pytest.mark.integration


async def add(api: Any, project: dict[str, Any], by: Any, user: Any, role: str) -> Any:
    return await api.client.post(
        f"/api/v1/projects/{project['id']}/members",
        json={"user_id": str(user), "role": role},
        headers=api.headers(by),
    )


async def test_update_honours_if_match_and_records_the_change(
    projects_api: Any, superuser_db: asyncpg.Connection
) -> None:
    owner = projects_api.auth.add("Olive")
    project = await projects_api.create_project(owner)
    url = f"/api/v1/projects/{project['id']}"
    got = await projects_api.client.get(url, headers=projects_api.headers(owner))
    assert got.headers["etag"] == '"1"'
    cached = await projects_api.client.get(
        url, headers=projects_api.headers(owner) | {"If-None-Match": '"1"'}
    )
    assert cached.status_code == 304

    updated = await projects_api.client.patch(
        url, json={"name": "Renamed"}, headers=projects_api.headers(owner) | {"If-Match": '"1"'}
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Renamed"
    assert updated.headers["etag"] == '"2"'

    stale = await projects_api.client.patch(
        url, json={"name": "Again"}, headers=projects_api.headers(owner) | {"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert (await projects_api.client.get(url, headers=projects_api.headers(owner))).json()[
        "name"
    ] == "Renamed"

    row = await superuser_db.fetchrow(
        "SELECT payload FROM projects.outbox WHERE routing_key = 'project.updated' "
        "AND aggregate_id = $1",
        project["id"],
    )
    assert row is not None
    assert '"changes": {"name": {"to": "Renamed", "from": "BUG project"}}' in row["payload"]


@pytest.mark.parametrize("field", ["id", "key", "owner", "version", "archived", "created_by"])
async def test_mass_assignment_of_read_only_fields_is_rejected(
    projects_api: Any, field: str
) -> None:
    owner = projects_api.auth.add("Olive")
    project = await projects_api.create_project(owner)
    response = await projects_api.client.patch(
        f"/api/v1/projects/{project['id']}", json={field: "x"}, headers=projects_api.headers(owner)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]


async def test_archive_makes_the_project_read_only_and_unarchive_undoes_it(
    projects_api: Any,
) -> None:
    owner = projects_api.auth.add("Olive")
    project = await projects_api.create_project(owner)
    base = f"/api/v1/projects/{project['id']}"
    archived = await projects_api.client.post(
        f"{base}/archive", headers=projects_api.headers(owner)
    )
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    me = await projects_api.client.get(f"{base}/members/me", headers=projects_api.headers(owner))
    assert me.json()["archived"] is True
    refused = await projects_api.client.patch(
        base, json={"name": "x"}, headers=projects_api.headers(owner)
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "project_archived"
    active = await projects_api.client.get("/api/v1/projects", headers=projects_api.headers(owner))
    assert active.json()["items"] == []
    listed = await projects_api.client.get(
        "/api/v1/projects?archived=true", headers=projects_api.headers(owner)
    )
    assert [p["key"] for p in listed.json()["items"]] == ["BUG"]
    back = await projects_api.client.post(f"{base}/unarchive", headers=projects_api.headers(owner))
    assert back.json()["archived"] is False


async def test_soft_delete_hides_the_project_until_an_owner_restores_it(
    projects_api: Any,
) -> None:
    owner = projects_api.auth.add("Olive")
    maintainer = projects_api.auth.add("Max")
    project = await projects_api.create_project(owner)
    await add(projects_api, project, owner, maintainer, "maintainer")
    base = f"/api/v1/projects/{project['id']}"
    denied = await projects_api.client.delete(base, headers=projects_api.headers(maintainer))
    assert denied.status_code == 403
    deleted = await projects_api.client.delete(base, headers=projects_api.headers(owner))
    assert deleted.status_code == 204
    for who in (owner, maintainer):
        gone = await projects_api.client.get(base, headers=projects_api.headers(who))
        assert gone.status_code == 404
    not_yours = await projects_api.client.post(
        f"{base}/restore", headers=projects_api.headers(maintainer)
    )
    assert not_yours.status_code == 403
    restored = await projects_api.client.post(
        f"{base}/restore", headers=projects_api.headers(owner)
    )
    assert restored.status_code == 200
    assert (
        await projects_api.client.get(base, headers=projects_api.headers(owner))
    ).status_code == 200


async def test_a_project_always_keeps_an_owner(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    second = projects_api.auth.add("Otto")
    project = await projects_api.create_project(owner)
    base = f"/api/v1/projects/{project['id']}/members"
    demote = await projects_api.client.patch(
        f"{base}/{owner}", json={"role": "developer"}, headers=projects_api.headers(owner)
    )
    assert demote.status_code == 409
    assert demote.json()["code"] == "last_owner"
    leave = await projects_api.client.delete(f"{base}/{owner}", headers=projects_api.headers(owner))
    assert leave.status_code == 409

    await add(projects_api, project, owner, second, "owner")
    assert (
        await projects_api.client.delete(f"{base}/{owner}", headers=projects_api.headers(owner))
    ).status_code == 204
    last = await projects_api.client.patch(
        f"{base}/{second}", json={"role": "viewer"}, headers=projects_api.headers(second)
    )
    assert last.status_code == 409


async def test_maintainers_manage_members_but_not_owners(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    maintainer = projects_api.auth.add("Max")
    dev = projects_api.auth.add("Dave")
    project = await projects_api.create_project(owner)
    await add(projects_api, project, owner, maintainer, "maintainer")
    await add(projects_api, project, maintainer, dev, "developer")
    base = f"/api/v1/projects/{project['id']}/members"
    promoted = await projects_api.client.patch(
        f"{base}/{dev}", json={"role": "maintainer"}, headers=projects_api.headers(maintainer)
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "maintainer"
    to_owner = await projects_api.client.patch(
        f"{base}/{dev}", json={"role": "owner"}, headers=projects_api.headers(maintainer)
    )
    assert to_owner.status_code == 403
    touch_owner = await projects_api.client.delete(
        f"{base}/{owner}", headers=projects_api.headers(maintainer)
    )
    assert touch_owner.status_code == 403
    removed = await projects_api.client.delete(
        f"{base}/{dev}", headers=projects_api.headers(maintainer)
    )
    assert removed.status_code == 204
    lost = await projects_api.client.get(
        f"/api/v1/projects/{project['id']}", headers=projects_api.headers(dev)
    )
    assert lost.status_code == 404


async def test_search_by_name_or_key(projects_api: Any) -> None:
    owner = projects_api.auth.add("Olive")
    for key in ("WEB", "API", "OPS"):
        await projects_api.create_project(owner, key)
    found = await projects_api.client.get(
        "/api/v1/projects?q=ap", headers=projects_api.headers(owner)
    )
    assert [p["key"] for p in found.json()["items"]] == ["API"]
    literal = await projects_api.client.get(
        "/api/v1/projects?q=%25", headers=projects_api.headers(owner)
    )
    assert literal.json()["items"] == []
