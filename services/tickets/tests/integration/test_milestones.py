"""Milestones through the tickets service's HTTP app on PostgreSQL (docs/adr/0039).

Tickets are planned for a milestone with SQL here (the ticket-side PATCH is tested with
the tickets): the trigger of migration 0005 keeps the milestone's progress either way.
The background job that clears deleted milestones is kept idle in these tests; the
deletion test runs its work itself (`clear_deleted_milestones`), so nothing races it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.permissions import ProjectRole
from bugtracker_testkit import TokenMinter, app_client
from bugtracker_tickets.application import milestones as milestones_module
from bugtracker_tickets.application.milestones import SYSTEM, MilestoneUseCases
from bugtracker_tickets.main import create_app
from bugtracker_tickets.settings import Settings
from fastapi import FastAPI

from services.tickets.tests.conftest import PROJECTS_URL, FakeProjects, TicketsApi

pytestmark = pytest.mark.integration

OWNER, MAINTAINER, DEV, REPORTER, VIEWER, STRANGER = (uuid.uuid4() for _ in range(6))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


@dataclass
class Scene:
    api: TicketsApi
    app: FastAPI

    @property
    def cases(self) -> MilestoneUseCases:
        cases: MilestoneUseCases = self.app.state.milestone_cases
        return cases

    def headers(self, user_id: uuid.UUID, **extra: str) -> dict[str, str]:
        return self.api.headers(user_id) | extra

    async def create(self, user_id: uuid.UUID, project: str = "BUG", **body: Any) -> httpx.Response:
        return await self.api.client.post(
            f"/api/v1/projects/{project}/milestones",
            json={"name": "1.0"} | body,
            headers=self.headers(user_id),
        )

    async def get(self, milestone_id: str, user_id: uuid.UUID = VIEWER) -> httpx.Response:
        return await self.api.client.get(
            f"/api/v1/milestones/{milestone_id}", headers=self.headers(user_id)
        )

    async def patch(
        self, milestone_id: str, user_id: uuid.UUID, body: Any, **headers: str
    ) -> httpx.Response:
        return await self.api.client.patch(
            f"/api/v1/milestones/{milestone_id}",
            json=body,
            headers=self.headers(user_id, **headers),
        )

    async def delete(self, milestone_id: str, user_id: uuid.UUID) -> httpx.Response:
        return await self.api.client.delete(
            f"/api/v1/milestones/{milestone_id}", headers=self.headers(user_id)
        )

    async def listed(self, query: str = "", user_id: uuid.UUID = VIEWER) -> list[str]:
        """The names of every page of the list, following the `Link` headers."""
        names: list[str] = []
        url: str | None = f"/api/v1/projects/BUG/milestones{query}"
        while url:
            page = await self.api.client.get(url, headers=self.headers(user_id))
            assert page.status_code == 200, page.text
            names += [m["name"] for m in page.json()["items"]]
            link = page.headers.get("link")
            assert (link is None) == (page.json()["next_cursor"] is None)
            url = link[1 : link.index(">")] if link else None
        return names


@pytest.fixture
async def scene(infra: Stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Scene]:
    """The tickets app (as `tickets_api`), with the app itself at hand and its
    milestone-clearing job idle."""

    async def idle(self: MilestoneUseCases, **_: float) -> None:
        return None

    monkeypatch.setattr(MilestoneUseCases, "keep_clearing", idle)
    migrated(infra, "tickets")
    await truncate_schema(infra, "tickets")
    tokens = TokenMinter()
    projects = FakeProjects()
    settings = Settings(
        database_url=infra.database_url("tickets"),
        amqp_url=infra.rabbitmq.url,
        projects_url=PROJECTS_URL,
    )
    app = create_app(
        settings,
        projects_transport=httpx.MockTransport(projects.router.handler),
        jwks_fetcher=tokens.fetch_jwks,
    )
    async with app_client(app) as client:
        yield Scene(TicketsApi(client, tokens, projects), app)


async def events_of(db: asyncpg.Connection, subject: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT payload FROM tickets.outbox WHERE aggregate_id = $1 ORDER BY position", subject
    )
    return [json.loads(row["payload"]) for row in rows]


async def test_a_milestone_is_created_read_changed_and_deleted_with_its_events(
    scene: Scene, superuser_db: asyncpg.Connection
) -> None:
    scene.api.projects.add("BUG", ROLES)
    created = await scene.create(MAINTAINER, name="  1.0  ", due_date="2027-03-01")
    assert created.status_code == 201, created.text
    body = created.json()
    milestone_id = body["id"]
    assert created.headers["location"] == f"/api/v1/milestones/{milestone_id}"
    assert created.headers["etag"] == '"1"'
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "project_id": str(next(iter(scene.api.projects.projects))),
        "name": "1.0",
        "description": "",
        "due_date": "2027-03-01",
        "state": "open",
        "progress": {"total": 0, "done": 0},
        "version": 1,
    }

    got = await scene.get(milestone_id)
    assert got.status_code == 200
    assert got.json() == body
    assert got.headers["etag"] == '"1"'
    cached = await scene.api.client.get(
        f"/api/v1/milestones/{milestone_id}",
        headers=scene.headers(VIEWER, **{"If-None-Match": '"1"'}),
    )
    assert cached.status_code == 304

    changed = await scene.patch(
        milestone_id,
        OWNER,
        {"description": "Ship it", "due_date": None, "state": "closed"},
        **{"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert (changed.json()["due_date"], changed.json()["state"], changed.json()["version"]) == (
        None,
        "closed",
        2,
    )
    stale = await scene.patch(milestone_id, OWNER, {"name": "x"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert (await scene.get(milestone_id)).json()["name"] == "1.0"

    deleted = await scene.delete(milestone_id, MAINTAINER)
    assert deleted.status_code == 204
    for after in (
        await scene.get(milestone_id),
        await scene.patch(milestone_id, OWNER, {"name": "x"}),
        await scene.delete(milestone_id, OWNER),
    ):
        assert after.status_code == 404
        assert after.json()["code"] == "not_found"

    events = await events_of(superuser_db, milestone_id)
    assert [(e["type"], e["sequence"], e["actorid"]) for e in events] == [
        ("io.bugtracker.milestone.created.v1", 1, str(MAINTAINER)),
        ("io.bugtracker.milestone.updated.v1", 2, str(OWNER)),
        ("io.bugtracker.milestone.deleted.v1", 3, str(MAINTAINER)),
    ]
    assert all(e["subject"] == milestone_id for e in events)
    assert events[1]["data"]["changes"] == {
        "description": {"from": "", "to": "Ship it"},
        "due_date": {"from": "2027-03-01", "to": None},
        "state": {"from": "open", "to": "closed"},
    }
    assert events[2]["data"]["deleted"] is True
    assert events[0]["data"]["progress"] == {"total": 0, "done": 0}


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", {"name": ""}),
        ("POST", {"name": "   "}),
        ("POST", {"name": "x" * 101}),
        ("POST", {"name": "ok", "description": "x" * 10_001}),
        ("POST", {"name": "ok", "colour": "red"}),
        ("POST", {"name": "ok", "due_date": "soon"}),
        ("POST", {"name": "ok", "state": "closed"}),
        ("PATCH", {"name": "x" * 101}),
        ("PATCH", {"name": None}),
        ("PATCH", {"state": "done"}),
        ("PATCH", {"colour": "red"}),
    ],
)
async def test_bad_bodies_are_422_problems_and_change_nothing(
    scene: Scene, method: str, body: dict[str, Any]
) -> None:
    scene.api.projects.add("BUG", ROLES)
    milestone = (await scene.create(MAINTAINER, name="kept")).json()
    if method == "POST":
        response = await scene.create(MAINTAINER, **body)
    else:
        response = await scene.patch(milestone["id"], MAINTAINER, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await scene.listed("?state=all") == ["kept"]
    assert (await scene.get(milestone["id"])).json()["version"] == 1


async def test_names_are_unique_per_project_among_live_milestones_whatever_the_case(
    scene: Scene,
) -> None:
    scene.api.projects.add("BUG", ROLES)
    scene.api.projects.add("OTHER", ROLES)
    beta = (await scene.create(MAINTAINER, name="Beta")).json()
    taken = await scene.create(MAINTAINER, name="bETA")
    assert taken.status_code == 409
    assert taken.json()["code"] == "milestone_exists"
    gamma = (await scene.create(MAINTAINER, name="Gamma")).json()
    renamed = await scene.patch(gamma["id"], MAINTAINER, {"name": "BETA"})
    assert renamed.status_code == 409
    assert renamed.json()["code"] == "milestone_exists"
    # Its own name in another case is no conflict.
    recased = await scene.patch(gamma["id"], MAINTAINER, {"name": "GAMMA"})
    assert recased.status_code == 200
    assert (await scene.create(MAINTAINER, "OTHER", name="beta")).status_code == 201
    assert (await scene.delete(beta["id"], MAINTAINER)).status_code == 204
    reused = await scene.create(MAINTAINER, name="beta")
    assert reused.status_code == 201, reused.text


async def test_concurrent_creates_of_one_name_make_one_milestone_and_409s(scene: Scene) -> None:
    scene.api.projects.add("BUG", ROLES)
    responses = await asyncio.gather(
        *(scene.create(MAINTAINER, name="Release" if i % 2 else "RELEASE") for i in range(6))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    assert all(r.json()["code"] == "milestone_exists" for r in responses if r.status_code == 409)
    assert len(await scene.listed()) == 1


async def test_lists_by_due_date_then_name_in_pages_filtered_by_state(scene: Scene) -> None:
    scene.api.projects.add("BUG", ROLES)
    for name, due in (
        ("late", "2027-06-01"),
        ("b-undated", None),
        ("a-undated", None),
        ("soon", "2027-01-01"),
        ("also soon", "2027-01-01"),
        ("old", "2026-01-01"),
    ):
        assert (await scene.create(MAINTAINER, name=name, due_date=due)).status_code == 201
    old = next(
        m
        for m in (
            await scene.api.client.get(
                "/api/v1/projects/BUG/milestones?limit=100", headers=scene.headers(VIEWER)
            )
        ).json()["items"]
        if m["name"] == "old"
    )
    closing = await scene.patch(old["id"], MAINTAINER, {"state": "closed"})
    assert closing.status_code == 200
    open_order = ["also soon", "soon", "late", "a-undated", "b-undated"]
    assert await scene.listed("?limit=2") == open_order
    assert await scene.listed() == open_order
    assert await scene.listed("?state=closed") == ["old"]
    assert await scene.listed("?state=all&limit=4") == ["old", *open_order]
    first = await scene.api.client.get(
        "/api/v1/projects/BUG/milestones?limit=2&state=all", headers=scene.headers(VIEWER)
    )
    assert "state=all" in first.headers["link"]
    for query in ("state=bogus", "limit=0", "limit=101", "cursor=xyz"):
        bad = await scene.api.client.get(
            f"/api/v1/projects/BUG/milestones?{query}", headers=scene.headers(VIEWER)
        )
        assert bad.status_code == 422, query


async def test_members_read_maintainers_and_owners_write_outsiders_see_nothing(
    scene: Scene,
) -> None:
    project = scene.api.projects.add("BUG", ROLES)
    milestone = (await scene.create(MAINTAINER)).json()
    for user in (DEV, REPORTER, VIEWER):
        assert (await scene.get(milestone["id"], user)).status_code == 200
        assert await scene.listed(user_id=user) == ["1.0"]
        for response in (
            await scene.create(user, name="mine"),
            await scene.patch(milestone["id"], user, {"name": "mine"}),
            await scene.delete(milestone["id"], user),
        ):
            assert response.status_code == 403, (user, response.text)
            assert response.json()["code"] == "forbidden"
    by_owner = await scene.create(OWNER, str(project.id), name="by owner")
    assert by_owner.status_code == 201
    assert (await scene.patch(by_owner.json()["id"], OWNER, {"name": "x"})).status_code == 200

    for response in (
        await scene.get(milestone["id"], STRANGER),
        await scene.api.client.get(
            "/api/v1/projects/BUG/milestones", headers=scene.headers(STRANGER)
        ),
        await scene.create(STRANGER, name="mine"),
        await scene.patch(milestone["id"], STRANGER, {"name": "mine"}),
        await scene.delete(milestone["id"], STRANGER),
        await scene.get(str(uuid.uuid4()), OWNER),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    project.archived = True
    for response in (
        await scene.create(MAINTAINER, name="late"),
        await scene.patch(milestone["id"], MAINTAINER, {"name": "late"}),
        await scene.delete(milestone["id"], OWNER),
    ):
        assert response.status_code == 409
        assert response.json()["code"] == "project_archived"
    assert (await scene.get(milestone["id"])).json()["name"] == "1.0"


async def plan(scene: Scene, db: asyncpg.Connection, milestone_id: str, count: int) -> list[str]:
    """`count` new tickets planned for the milestone (set with SQL)."""
    ids = [(await scene.api.create(DEV, "BUG", title=f"t{i}")).json()["id"] for i in range(count)]
    await db.execute(
        "UPDATE tickets.tickets SET milestone_id = $1 WHERE id = ANY($2::uuid[])",
        uuid.UUID(milestone_id),
        ids,
    )
    return ids


async def move(scene: Scene, ticket_id: str, to: str, resolution: str | None = None) -> None:
    body = {"to": to} | ({"resolution": resolution} if resolution else {})
    response = await scene.api.client.post(
        f"/api/v1/tickets/{ticket_id}/transitions", json=body, headers=scene.headers(DEV)
    )
    assert response.status_code == 200, response.text


async def test_progress_follows_the_tickets_status_and_deletion(
    scene: Scene, superuser_db: asyncpg.Connection
) -> None:
    scene.api.projects.add("BUG", ROLES)
    milestone = (await scene.create(MAINTAINER)).json()
    other = (await scene.create(MAINTAINER, name="2.0")).json()
    first, second, third, fourth = await plan(scene, superuser_db, milestone["id"], 4)
    await plan(scene, superuser_db, other["id"], 1)

    async def progress() -> dict[str, int]:
        got = (await scene.get(milestone["id"])).json()["progress"]
        listed = (
            await scene.api.client.get(
                "/api/v1/projects/BUG/milestones", headers=scene.headers(VIEWER)
            )
        ).json()["items"]
        assert next(m for m in listed if m["id"] == milestone["id"])["progress"] == got
        return dict(got)

    assert await progress() == {"total": 4, "done": 0}
    await move(scene, first, "in_progress")
    await move(scene, first, "done")
    assert await progress() == {"total": 4, "done": 1}
    await move(scene, second, "closed", "wont_fix")
    assert await progress() == {"total": 4, "done": 2}
    await move(scene, second, "open")  # reopened
    assert await progress() == {"total": 4, "done": 1}
    for ticket in (first, third):  # a finished and an open ticket deleted
        deleted = await scene.api.client.delete(
            f"/api/v1/tickets/{ticket}", headers=scene.headers(OWNER)
        )
        assert deleted.status_code == 204
    assert await progress() == {"total": 2, "done": 0}
    restored = await scene.api.client.post(
        f"/api/v1/tickets/{first}/restore", headers=scene.headers(OWNER)
    )
    assert restored.status_code == 200
    assert await progress() == {"total": 3, "done": 1}
    # Moved to another milestone with SQL: counted there instead.
    await superuser_db.execute(
        "UPDATE tickets.tickets SET milestone_id = $1 WHERE id = $2",
        uuid.UUID(other["id"]),
        uuid.UUID(fourth),
    )
    assert await progress() == {"total": 2, "done": 1}
    assert (await scene.get(other["id"])).json()["progress"] == {"total": 2, "done": 0}
    # A change of the milestone keeps the counts the trigger made.
    renamed = await scene.patch(milestone["id"], MAINTAINER, {"name": "1.0 final"})
    assert renamed.json()["progress"] == {"total": 2, "done": 1}
    assert await progress() == {"total": 2, "done": 1}


async def test_deleting_a_milestone_clears_its_tickets_in_batches_after_the_response(
    scene: Scene, superuser_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milestones_module, "DELETE_BATCH", 3)
    scene.api.projects.add("BUG", ROLES)
    milestone = (await scene.create(MAINTAINER)).json()
    kept = (await scene.create(MAINTAINER, name="2.0")).json()
    ticket_ids = await plan(scene, superuser_db, milestone["id"], 7)
    [other_ticket] = await plan(scene, superuser_db, kept["id"], 1)
    # One of them deleted: its milestone is cleared too (a deleted ticket can come back).
    await scene.api.client.delete(f"/api/v1/tickets/{ticket_ids[0]}", headers=scene.headers(OWNER))

    deleted = await scene.delete(milestone["id"], MAINTAINER)
    assert deleted.status_code == 204
    assert (await scene.get(milestone["id"])).status_code == 404
    assert await scene.listed("?state=all") == ["2.0"]
    assert scene.cases.wake.is_set()  # tickets remain: the job would run at once
    still = await superuser_db.fetchval(
        "SELECT count(*) FROM tickets.tickets WHERE milestone_id = $1", uuid.UUID(milestone["id"])
    )
    assert still == 4

    assert await scene.cases.clear_deleted_milestones() == 4

    rows = await superuser_db.fetch(
        "SELECT id, milestone_id, version FROM tickets.tickets WHERE id = ANY($1::uuid[])",
        ticket_ids,
    )
    assert len(rows) == 7
    assert all(row["milestone_id"] is None for row in rows)
    # `#>> '{}'`: the JSON value as text (NULL for JSON null).
    history = await superuser_db.fetch(
        "SELECT ticket_id, actor_id, from_value #>> '{}' AS old, to_value #>> '{}' AS new "
        "FROM tickets.history WHERE field = 'milestone_id' ORDER BY id"
    )
    assert sorted(str(h["ticket_id"]) for h in history) == sorted(ticket_ids)
    assert all((h["old"], h["new"]) == (milestone["id"], None) for h in history)
    actors = [h["actor_id"] for h in history]
    assert actors.count(MAINTAINER) == 3  # the deleter's batch
    assert actors.count(SYSTEM.user_id) == 4  # the rest, by the service
    for ticket_id in ticket_ids:
        updates = [
            e
            for e in await events_of(superuser_db, ticket_id)
            if e["type"].endswith("ticket.updated.v1")
        ]
        assert [e["data"]["changes"] for e in updates][-1:] == [
            {"milestone_id": {"from": milestone["id"], "to": None}}
        ]
        assert len([e for e in updates if "milestone_id" in e["data"]["changes"]]) == 1
    versions = {str(row["id"]): row["version"] for row in rows}
    assert versions[ticket_ids[0]] == 3  # created, deleted, cleared
    assert all(versions[t] == 2 for t in ticket_ids[1:])
    purged = await superuser_db.fetchval(
        "SELECT count(*) FROM tickets.milestones WHERE id = $1", uuid.UUID(milestone["id"])
    )
    assert purged == 0
    assert await superuser_db.fetchval(
        "SELECT milestone_id FROM tickets.tickets WHERE id = $1", uuid.UUID(other_ticket)
    ) == uuid.UUID(kept["id"])
    assert (await scene.get(kept["id"])).json()["progress"] == {"total": 1, "done": 0}
    assert await scene.cases.clear_deleted_milestones() == 0
