"""A project's tracker configuration (docs/adr/0040) through the tickets service's HTTP
app on PostgreSQL: the workflow, the ticket types and the custom fields, what changing
them does to the tickets already there (moved with history and events, in the change's
transaction), and what the database's progress and blocker triggers make of a status's
category. The purge job for deleted fields is kept idle here; the test that needs it
runs its work itself (`purge_deleted_fields`), so nothing races it."""

from __future__ import annotations

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
from bugtracker_testkit import (
    TokenMinter,
    app_client,
    assert_write_is_atomic,
    fault_at_commit,
    fault_on,
    routing_key_is,
)
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.application.milestones import MilestoneUseCases
from bugtracker_tickets.application.use_cases import TicketUseCases
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
DEFAULT_STATUSES = ["open", "in_progress", "in_review", "done", "closed"]
DEFAULT_TYPES = ["bug", "feature", "task", "improvement"]


def status(key: str, category: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": key.replace("_", " ").title(), "category": category} | extra


def move_def(source: str, to: str, role: str = "developer") -> dict[str, str]:
    return {"from": source, "to": to, "min_role": role}


# new -> doing -> shipped, back to new; `rejected` (needs a resolution) by maintainers only.
CUSTOM = {
    "statuses": [
        status("new", "todo"),
        status("doing", "in_progress"),
        status("shipped", "done"),
        status("rejected", "done", requires_resolution=True),
    ],
    "initial": "new",
    "transitions": [
        move_def("new", "doing"),
        move_def("doing", "shipped"),
        move_def("doing", "new", "reporter"),
        move_def("shipped", "new", "reporter"),
        move_def("new", "rejected", "maintainer"),
        move_def("doing", "rejected", "maintainer"),
        move_def("rejected", "new", "reporter"),
    ],
}


def default_with(**categories: str) -> dict[str, Any]:
    """The default workflow plus a done status `shipped` (from in_progress and in_review,
    back to open), with the categories of some statuses changed."""
    kinds = {
        "open": "todo",
        "in_progress": "in_progress",
        "in_review": "in_progress",
        "done": "done",
        "closed": "done",
        "shipped": "done",
    } | categories
    return {
        "statuses": [
            status(key, kind, requires_resolution=key == "closed") for key, kind in kinds.items()
        ],
        "initial": "open",
        "transitions": [
            move_def("open", "in_progress"),
            move_def("in_progress", "in_review"),
            move_def("in_progress", "done"),
            move_def("in_progress", "shipped"),
            move_def("in_review", "shipped"),
            move_def("in_review", "done"),
            move_def("done", "open", "reporter"),
            move_def("shipped", "open", "reporter"),
            move_def("open", "closed", "reporter"),
        ],
    }


@dataclass
class Scene:
    api: TicketsApi
    app: FastAPI
    db: asyncpg.Connection

    @property
    def configuration(self) -> ConfigurationUseCases:
        cases: ConfigurationUseCases = self.app.state.configuration_cases
        return cases

    @property
    def tickets(self) -> TicketUseCases:
        cases: TicketUseCases = self.app.state.use_cases
        return cases

    def project(self, key: str) -> Any:
        return self.api.projects.add(key, ROLES)

    async def call(self, user: uuid.UUID, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.api.headers(user) | kwargs.pop("headers", {})
        return await self.api.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    async def put_workflow(
        self, project: str, body: dict[str, Any], version: int | None, user: uuid.UUID = MAINTAINER
    ) -> httpx.Response:
        headers = {} if version is None else {"If-Match": f'"{version}"'}
        return await self.call(
            user, "PUT", f"/projects/{project}/workflow", json=body, headers=headers
        )

    async def put_types(
        self, project: str, body: dict[str, Any], version: int, user: uuid.UUID = MAINTAINER
    ) -> httpx.Response:
        return await self.call(
            user,
            "PUT",
            f"/projects/{project}/ticket-types",
            json=body,
            headers={"If-Match": f'"{version}"'},
        )

    async def create(self, project: str, user: uuid.UUID = DEV, **body: Any) -> httpx.Response:
        return await self.api.create(user, project, **body)

    async def created(self, project: str, user: uuid.UUID = DEV, **body: Any) -> dict[str, Any]:
        response = await self.create(project, user, **body)
        assert response.status_code == 201, response.text
        ticket: dict[str, Any] = response.json()
        return ticket

    async def ticket(self, ref: str) -> dict[str, Any]:
        response = await self.call(VIEWER, "GET", f"/tickets/{ref}")
        assert response.status_code == 200, response.text
        ticket: dict[str, Any] = response.json()
        return ticket

    async def transition(
        self, ref: str, to: str, user: uuid.UUID = DEV, **extra: Any
    ) -> httpx.Response:
        return await self.call(user, "POST", f"/tickets/{ref}/transitions", json={"to": to} | extra)

    async def patch(self, ref: str, user: uuid.UUID = DEV, **body: Any) -> httpx.Response:
        return await self.call(user, "PATCH", f"/tickets/{ref}", json=body)

    async def add_field(self, project: str, **body: Any) -> httpx.Response:
        return await self.call(MAINTAINER, "POST", f"/projects/{project}/fields", json=body)

    async def listed(self, project: str, query: str) -> httpx.Response:
        return await self.call(
            VIEWER, "GET", f"/projects/{project}/tickets?{query}&sort=created_at&limit=100"
        )

    async def keys(self, project: str, query: str) -> list[str]:
        response = await self.listed(project, query)
        assert response.status_code == 200, response.text
        return [item["key"] for item in response.json()["items"]]

    async def history(self, ref: str) -> list[tuple[str, Any, Any]]:
        response = await self.call(VIEWER, "GET", f"/tickets/{ref}/history?limit=100")
        assert response.status_code == 200, response.text
        return [(h["field"], h["from"], h["to"]) for h in response.json()["items"]]

    async def events(self, routing_key: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT payload FROM tickets.outbox WHERE routing_key = $1 ORDER BY position",
            routing_key,
        )
        return [json.loads(row["payload"]) for row in rows]

    async def ticket_events(self, ticket_id: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.db.fetch(
            "SELECT routing_key, payload FROM tickets.outbox WHERE aggregate_id = $1"
            " ORDER BY position",
            ticket_id,
        )
        return [(row["routing_key"], json.loads(row["payload"])["data"]) for row in rows]


@pytest.fixture
async def scene(
    infra: Stack, superuser_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Scene]:
    """The tickets app (as `tickets_api`) with the app at hand, its background purge of
    deleted fields and milestone clearing idle."""

    async def idle(self: object, **_: float) -> None:
        return None

    monkeypatch.setattr(ConfigurationUseCases, "keep_purging", idle)
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
        yield Scene(TicketsApi(client, tokens, projects), app, superuser_db)


def errors_at(response: httpx.Response) -> list[list[Any]]:
    return [error["loc"] for error in response.json().get("errors", [])]


# -- 1. reading and the rules of a change ---------------------------------------------------


async def test_defaults_and_the_rules_of_replacing_the_workflow(scene: Scene) -> None:
    project = scene.project("CFG")
    workflow = await scene.call(VIEWER, "GET", "/projects/CFG/workflow")
    assert workflow.status_code == 200, workflow.text
    assert workflow.headers["etag"] == '"1"'
    body = workflow.json()
    assert [s["key"] for s in body["statuses"]] == DEFAULT_STATUSES
    assert [s["category"] for s in body["statuses"]] == [
        "todo",
        "in_progress",
        "in_progress",
        "done",
        "done",
    ]
    assert body["initial"] == "open"
    assert body["version"] == 1
    assert {"from": "open", "to": "closed", "min_role": "reporter"} in body["transitions"]
    assert len(body["transitions"]) == 12
    not_modified = await scene.call(
        VIEWER, "GET", "/projects/CFG/workflow", headers={"If-None-Match": '"1"'}
    )
    assert not_modified.status_code == 304

    types = await scene.call(VIEWER, "GET", "/projects/CFG/ticket-types")
    assert types.status_code == 200, types.text
    assert types.headers["etag"] == '"1"'
    assert [t["key"] for t in types.json()["types"]] == DEFAULT_TYPES

    required = await scene.put_workflow("CFG", CUSTOM, None)
    assert required.status_code == 428, required.text
    assert required.json()["code"] == "precondition_required"
    stale = await scene.put_workflow("CFG", CUSTOM, 7)
    assert stale.status_code == 412, stale.text
    types_required = await scene.call(
        MAINTAINER, "PUT", "/projects/CFG/ticket-types", json={"types": [{"key": "x", "name": "X"}]}
    )
    assert types_required.status_code == 428

    unreachable = CUSTOM | {
        "transitions": [t for t in CUSTOM["transitions"] if t["to"] != "rejected"]
    }
    refused = await scene.put_workflow("CFG", unreachable, 1)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_error"
    assert "rejected" in refused.text
    assert "cannot be reached" in refused.text
    no_done = {
        "statuses": [status("a", "todo"), status("b", "in_progress")],
        "initial": "a",
        "transitions": [move_def("a", "b")],
    }
    refused = await scene.put_workflow("CFG", no_done, 1)
    assert refused.status_code == 422, refused.text
    assert "done category" in refused.text
    after = await scene.call(VIEWER, "GET", "/projects/CFG/workflow")
    assert after.headers["etag"] == '"1"'
    assert [s["key"] for s in after.json()["statuses"]] == DEFAULT_STATUSES
    assert project.key == "CFG"


async def test_only_maintainers_of_a_live_project_change_the_configuration(
    scene: Scene,
) -> None:
    project = scene.project("CFG")
    for who in (DEV, REPORTER, VIEWER):
        forbidden = await scene.put_workflow("CFG", CUSTOM, 1, user=who)
        assert forbidden.status_code == 403, (who, forbidden.text)
        forbidden = await scene.put_types("CFG", {"types": [{"key": "x", "name": "X"}]}, 1, who)
        assert forbidden.status_code == 403
        forbidden = await scene.call(
            who, "POST", "/projects/CFG/fields", json={"key": "k", "name": "K", "type": "text"}
        )
        assert forbidden.status_code == 403
    outsider = await scene.put_workflow("CFG", CUSTOM, 1, user=STRANGER)
    assert outsider.status_code == 404
    assert (await scene.call(STRANGER, "GET", "/projects/CFG/workflow")).status_code == 404

    project.archived = True
    archived = await scene.put_workflow("CFG", CUSTOM, 1)
    assert archived.status_code == 409, archived.text
    assert archived.json()["code"] == "project_archived"
    project.archived = False

    after = await scene.call(VIEWER, "GET", "/projects/CFG/workflow")
    assert after.headers["etag"] == '"1"'
    assert [s["key"] for s in after.json()["statuses"]] == DEFAULT_STATUSES
    assert await scene.events("project.workflow_changed") == []


# -- 2. replacing the workflow, moving tickets ----------------------------------------------


async def test_a_new_workflow_moves_tickets_off_removed_statuses(scene: Scene) -> None:
    scene.project("WF")
    opened = await scene.created("WF", REPORTER, title="opened")
    working = await scene.created("WF", REPORTER, title="working")
    reviewed = await scene.created("WF", REPORTER, title="reviewed")
    for ref, path in ((working, ["in_progress"]), (reviewed, ["in_progress", "in_review"])):
        for to in path:
            assert (await scene.transition(ref["key"], to)).status_code == 200

    refused = await scene.put_workflow("WF", CUSTOM, 1)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "status_in_use"
    assert refused.json()["counts"] == {"open": 1, "in_progress": 1, "in_review": 1}
    assert (await scene.ticket(reviewed["key"]))["status"] == "in_review"
    current = await scene.call(VIEWER, "GET", "/projects/WF/workflow")
    assert current.headers["etag"] == '"1"'
    # A move to a status the new workflow does not have is not a move.
    wrong = await scene.put_workflow("WF", CUSTOM | {"migrate": {"open": "closed"}}, 1)
    assert wrong.status_code == 422, wrong.text

    migrate = {"open": "new", "in_progress": "doing", "in_review": "shipped"}
    changed = await scene.put_workflow("WF", CUSTOM | {"migrate": migrate}, 1)
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["version"] == 2
    assert [s["key"] for s in changed.json()["statuses"]] == ["new", "doing", "shipped", "rejected"]
    got = await scene.call(VIEWER, "GET", "/projects/WF/workflow")
    assert got.headers["etag"] == '"2"'
    assert got.json()["initial"] == "new"

    expected = {
        opened["key"]: ("new", "todo", None),
        working["key"]: ("doing", "in_progress", None),
        reviewed["key"]: ("shipped", "done", "fixed"),
    }
    for key, (to, category, resolution) in expected.items():
        ticket = await scene.ticket(key)
        assert (ticket["status"], ticket["status_category"], ticket["resolution"]) == (
            to,
            category,
            resolution,
        )
    assert (await scene.history(opened["key"]))[-1:] == [("status", "open", "new")]
    assert (await scene.history(reviewed["key"]))[-2:] == [
        ("status", "in_review", "shipped"),
        ("resolution", None, "fixed"),
    ]
    moved = {
        e["data"]["key"]: e["data"]
        for e in await scene.events("ticket.status_changed")
        if e["data"]["status"] in ("new", "doing", "shipped")
    }
    assert set(moved) == set(expected)
    assert moved[reviewed["key"]]["changes"] == {
        "status": {"from": "in_review", "to": "shipped"},
        "resolution": {"from": None, "to": "fixed"},
    }
    assert moved[reviewed["key"]]["status_category"] == "done"
    [announced] = await scene.events("project.workflow_changed")
    assert announced["data"]["version"] == 2
    assert announced["data"]["moved"] == {"open": 1, "in_progress": 1, "in_review": 1}
    assert [s["key"] for s in announced["data"]["workflow"]["statuses"]] == [
        "new",
        "doing",
        "shipped",
        "rejected",
    ]

    fresh = await scene.created("WF", REPORTER, title="fresh")
    assert (fresh["status"], fresh["status_category"]) == ("new", "todo")
    # Statuses the project no longer has are not a list filter; its own are.
    assert (await scene.listed("WF", "status=open")).status_code == 422
    assert await scene.keys("WF", "status=new") == [opened["key"], fresh["key"]]

    await check_transitions(scene, working["key"])


async def check_transitions(scene: Scene, working: str) -> None:
    """The moves of the new workflow from `doing` for a ticket REPORTER reported."""

    async def moves(user: uuid.UUID) -> list[str]:
        response = await scene.call(user, "GET", f"/tickets/{working}/transitions")
        assert response.status_code == 200, response.text
        return sorted(t["to"] for t in response.json())

    assert await moves(MAINTAINER) == ["new", "rejected", "shipped"]
    assert await moves(DEV) == ["new", "shipped"]
    assert await moves(REPORTER) == ["new"]  # the reporter's own ticket
    assert await moves(VIEWER) == []

    assert (await scene.transition(working, "open")).status_code == 409
    forbidden = await scene.transition(working, "rejected", resolution="wont_fix")
    assert forbidden.status_code == 403, forbidden.text
    needs_resolution = await scene.transition(working, "rejected", MAINTAINER)
    assert needs_resolution.status_code == 422, needs_resolution.text
    rejected = await scene.transition(working, "rejected", MAINTAINER, resolution="wont_fix")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["status_category"]) == ("rejected", "done")
    assert rejected.json()["resolution"] == "wont_fix"


# -- 3. categories in the database -----------------------------------------------------------


async def test_progress_and_blockers_follow_the_status_category(scene: Scene) -> None:
    project = scene.project("CAT")
    milestone = await scene.call(
        MAINTAINER, "POST", "/projects/CAT/milestones", json={"name": "1.0"}
    )
    assert milestone.status_code == 201, milestone.text
    milestone_id = milestone.json()["id"]
    first = await scene.created("CAT", title="first", milestone_id=milestone_id)
    second = await scene.created("CAT", title="second", milestone_id=milestone_id)
    first_blocked = await scene.created("CAT", title="blocked by first")
    second_blocked = await scene.created("CAT", title="blocked by second")
    for blocker, blocked in ((first, first_blocked), (second, second_blocked)):
        await scene.db.execute(
            "INSERT INTO tickets.relations (id, source_id, target_id, type, created_at,"
            " created_by) VALUES ($1, $2, $3, 'blocks', now(), $4)",
            uuid.uuid4(),
            uuid.UUID(blocker["id"]),
            uuid.UUID(blocked["id"]),
            DEV,
        )

    async def progress() -> tuple[int, int]:
        got = await scene.call(VIEWER, "GET", f"/milestones/{milestone_id}")
        assert got.status_code == 200, got.text
        return got.json()["progress"]["total"], got.json()["progress"]["done"]

    async def open_blockers(ticket: dict[str, Any]) -> int:
        count: int = await scene.db.fetchval(
            "SELECT open_blockers FROM tickets.tickets WHERE id = $1", uuid.UUID(ticket["id"])
        )
        return count

    assert await progress() == (2, 0)
    assert await scene.keys("CAT", "is=blocked") == [first_blocked["key"], second_blocked["key"]]

    added = await scene.put_workflow("CAT", default_with(), 1)
    assert added.status_code == 200, added.text
    for to in ("in_progress", "shipped"):
        assert (await scene.transition(first["key"], to)).status_code == 200
    assert (await scene.ticket(first["key"]))["status_category"] == "done"
    assert await progress() == (2, 1)
    assert await open_blockers(first_blocked) == 0
    assert await scene.keys("CAT", "is=blocked") == [second_blocked["key"]]

    for to in ("in_progress", "in_review"):
        assert (await scene.transition(second["key"], to)).status_code == 200
    assert await progress() == (2, 1)

    # A kept status changes category: the tickets in it, the progress and the blockers follow.
    review_done = await scene.put_workflow("CAT", default_with(in_review="done"), 2)
    assert review_done.status_code == 200, review_done.text
    assert (await scene.ticket(second["key"]))["status_category"] == "done"
    assert await progress() == (2, 2)
    assert await open_blockers(second_blocked) == 0
    assert await scene.keys("CAT", "is=blocked") == []
    row = await scene.db.fetchrow(
        "SELECT total, done FROM tickets.milestones WHERE id = $1", uuid.UUID(milestone_id)
    )
    assert (row["total"], row["done"]) == (2, 2)

    # And back: the shipped status is no longer done either.
    back = await scene.put_workflow("CAT", default_with(shipped="in_progress"), 3)
    assert back.status_code == 200, back.text
    assert (await scene.ticket(first["key"]))["status_category"] == "in_progress"
    assert (await scene.ticket(second["key"]))["status_category"] == "in_progress"
    assert await progress() == (2, 0)
    assert await scene.keys("CAT", "is=blocked") == [first_blocked["key"], second_blocked["key"]]
    assert project.key == "CAT"


# -- 4. ticket types -------------------------------------------------------------------------


async def test_ticket_types_replaced_with_migrate(scene: Scene) -> None:
    scene.project("TY")
    for key, types in (("found_in", ["bug", "task"]), ("impact", ["improvement"])):
        added = await scene.add_field("TY", key=key, name=key, type="text", ticket_types=types)
        assert added.status_code == 201, added.text
    bug = await scene.created("TY", type="bug", fields={"found_in": "1.2"})
    unspecified = await scene.created("TY")
    assert unspecified["type"] == "bug"
    feature = await scene.created("TY", type="feature")
    new_types = {"types": [{"key": "task", "name": "Task"}, {"key": "story", "name": "Story"}]}

    refused = await scene.put_types("TY", new_types, 1)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "type_in_use"
    assert refused.json()["counts"] == {"bug": 2, "feature": 1}
    assert (await scene.ticket(bug["key"]))["type"] == "bug"

    # `impact` would apply to no type: the change is refused, nothing moved.
    migrate = {"bug": "story", "feature": "task"}
    refused = await scene.put_types("TY", new_types | {"migrate": migrate}, 1)
    assert refused.status_code == 422, refused.text
    assert "impact" in refused.text
    assert (await scene.ticket(bug["key"]))["type"] == "bug"

    migrate |= {"improvement": "story"}
    changed = await scene.put_types("TY", new_types | {"migrate": migrate}, 1)
    assert changed.status_code == 200, changed.text
    scopes = (await scene.call(VIEWER, "GET", "/projects/TY/fields")).json()["items"]
    assert [(f["key"], f["ticket_types"], f["version"]) for f in scopes] == [
        ("found_in", ["story", "task"], 2),
        ("impact", ["story"], 2),
    ]
    assert (await scene.ticket(bug["key"]))["fields"] == {"found_in": "1.2"}
    assert await scene.keys("TY", "field.found_in=1.2") == [bug["key"]]
    assert changed.headers["etag"] == '"2"'
    assert [t["key"] for t in changed.json()["types"]] == ["task", "story"]
    for ticket, to in ((bug, "story"), (unspecified, "story"), (feature, "task")):
        assert (await scene.ticket(ticket["key"]))["type"] == to
        assert (await scene.history(ticket["key"]))[-1] == ("type", ticket["type"], to)
        name, data = (await scene.ticket_events(ticket["id"]))[-1]
        assert name == "ticket.updated"
        assert data["changes"] == {"type": {"from": ticket["type"], "to": to}}
    [announced] = await scene.events("project.ticket_types_changed")
    assert announced["data"]["moved"] == {"bug": 2, "feature": 1}

    fresh = await scene.created("TY")
    assert fresh["type"] == "task"
    unknown = await scene.create("TY", type="bug")
    assert unknown.status_code == 422, unknown.text
    assert errors_at(unknown) == [["body", "type"]]
    assert (await scene.listed("TY", "type=bug")).status_code == 422
    assert errors_at(await scene.listed("TY", "type=bug")) == [["query", "type"]]
    assert await scene.keys("TY", "type=story") == [bug["key"], unspecified["key"]]
    changed_type = await scene.patch(fresh["key"], type="feature")
    assert changed_type.status_code == 422, changed_type.text


# -- 5. custom fields ------------------------------------------------------------------------

SEVERITY = [
    {"value": "minor", "label": "Minor"},
    {"value": "major", "label": "Major"},
    {"value": "critical", "label": "Critical"},
]
PLATFORMS = [
    {"value": "linux", "label": "Linux"},
    {"value": "mac", "label": "macOS"},
    {"value": "windows", "label": "Windows"},
]
GOOD_AND_BAD: dict[str, tuple[str, dict[str, Any], Any, list[Any]]] = {
    # key: (type, extra definition, a good value, bad values)
    "note": ("text", {}, "some text", [5, "x" * 1001]),
    "points": ("number", {}, 3, ["3", True, 1e16]),
    "deadline": ("date", {}, "2027-01-31", ["31/01/2027", "2027-02-30", 20270131]),
    "flag": ("bool", {}, True, ["true", 1]),
    "severity": ("select", {"options": SEVERITY}, "major", ["huge", ["major"]]),
    "platforms": ("multi_select", {"options": PLATFORMS}, ["mac", "linux"], ["mac", ["beos"]]),
    "owner": ("user", {}, str(DEV), ["nobody"]),
    "link": ("url", {}, "https://example.com/x", ["ftp://example.com", "example.com"]),
}


async def fields_project(scene: Scene, key: str) -> None:
    scene.project(key)
    for field_key, (kind, extra, _, _) in GOOD_AND_BAD.items():
        created = await scene.add_field(
            key, key=field_key, name=field_key.title(), type=kind, **extra
        )
        assert created.status_code == 201, created.text
        assert created.headers["etag"] == '"1"'
        assert created.json()["type"] == kind


async def test_field_values_are_checked_stored_and_recorded(scene: Scene) -> None:
    await fields_project(scene, "FLD")
    listed = await scene.call(VIEWER, "GET", "/projects/FLD/fields")
    assert [f["key"] for f in listed.json()["items"]] == list(GOOD_AND_BAD)
    again = await scene.add_field("FLD", key="note", name="Other", type="number")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "field_exists"

    for field_key, (_, _, _, bads) in GOOD_AND_BAD.items():
        for bad in bads:
            refused = await scene.create("FLD", fields={field_key: bad})
            assert refused.status_code == 422, (field_key, bad, refused.text)
            assert errors_at(refused) == [["body", "fields", field_key]], (field_key, bad)
    unknown = await scene.create("FLD", fields={"nope": 1})
    assert errors_at(unknown) == [["body", "fields", "nope"]]
    outsider = await scene.create("FLD", fields={"owner": str(STRANGER)})
    assert outsider.status_code == 422, outsider.text
    assert errors_at(outsider) == [["body", "fields", "owner"]]
    assert await scene.db.fetchval("SELECT count(*) FROM tickets.tickets") == 0

    goods = {k: good for k, (_, _, good, _) in GOOD_AND_BAD.items()}
    ticket = await scene.created("FLD", fields=goods)
    assert ticket["fields"] == goods | {"platforms": ["linux", "mac"]}  # in the options' order
    assert (await scene.ticket(ticket["key"]))["fields"] == ticket["fields"]
    name, data = (await scene.ticket_events(ticket["id"]))[0]
    assert name == "ticket.created"
    assert data["fields"] == ticket["fields"]

    for field_key, (_, _, _, bads) in GOOD_AND_BAD.items():
        refused = await scene.patch(ticket["key"], fields={field_key: bads[0]})
        assert refused.status_code == 422, (field_key, refused.text)
        assert errors_at(refused) == [["body", "fields", field_key]]
    assert (await scene.ticket(ticket["key"]))["version"] == ticket["version"]

    patched = await scene.patch(
        ticket["key"], fields={"points": 5.5, "note": None, "severity": "critical"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["fields"]["points"] == 5.5
    assert "note" not in patched.json()["fields"]
    history = await scene.history(ticket["key"])
    assert ("fields.points", 3, 5.5) in history
    assert ("fields.note", "some text", None) in history
    assert ("fields.severity", "major", "critical") in history
    name, data = (await scene.ticket_events(ticket["id"]))[-1]
    assert name == "ticket.updated"
    assert data["fields"]["severity"] == "critical"
    assert data["changes"]["fields.severity"] == {"from": "major", "to": "critical"}


async def test_required_and_type_scoped_fields(scene: Scene) -> None:
    scene.project("REQ")
    required = await scene.add_field(
        "REQ",
        key="severity",
        name="Severity",
        type="select",
        options=SEVERITY,
        required=True,
        ticket_types=["bug"],
    )
    assert required.status_code == 201, required.text
    unknown_type = await scene.add_field(
        "REQ", key="x", name="X", type="text", ticket_types=["epic"]
    )
    assert unknown_type.status_code == 422, unknown_type.text

    missing = await scene.create("REQ", type="bug")
    assert missing.status_code == 422, missing.text
    assert errors_at(missing) == [["body", "fields", "severity"]]
    bug = await scene.created("REQ", type="bug", fields={"severity": "minor"})
    # A field scoped to bugs is neither required from nor taken by a task.
    task = await scene.created("REQ", type="task")
    refused = await scene.create("REQ", type="task", fields={"severity": "minor"})
    assert refused.status_code == 422
    assert errors_at(refused) == [["body", "fields", "severity"]]
    cleared = await scene.patch(bug["key"], fields={"severity": None})
    assert cleared.status_code == 422, cleared.text
    assert errors_at(cleared) == [["body", "fields", "severity"]]
    assert (await scene.ticket(bug["key"]))["fields"] == {"severity": "minor"}
    assert (await scene.patch(task["key"], fields={"severity": "major"})).status_code == 422
    # A bug becoming a task drops the value of a field for bugs only.
    retyped = await scene.patch(bug["key"], type="task")
    assert retyped.status_code == 200, retyped.text
    assert retyped.json()["fields"] == {}
    assert ("fields.severity", "minor", None) in await scene.history(bug["key"])
    assert await scene.keys("REQ", "field.severity=minor") == []


async def test_field_filters(scene: Scene) -> None:
    await fields_project(scene, "FLT")
    scene.project("OTH")
    a = await scene.created(
        "FLT",
        fields={
            "severity": "major",
            "points": 1,
            "deadline": "2027-01-10",
            "flag": True,
            "platforms": ["linux"],
            "owner": str(DEV),
            "note": "a",
        },
    )
    b = await scene.created(
        "FLT",
        fields={
            "severity": "minor",
            "points": 5,
            "deadline": "2027-02-10",
            "flag": False,
            "platforms": ["linux", "mac"],
            "owner": str(REPORTER),
        },
    )
    c = await scene.created(
        "FLT",
        fields={
            "severity": "critical",
            "points": 10.5,
            "deadline": "2027-03-10",
            "platforms": ["windows"],
        },
    )
    d = await scene.created("FLT")
    a, b, c, d = a["key"], b["key"], c["key"], d["key"]
    cases = {
        "field.severity=major": [a],
        "field.severity=major&field.severity=critical": [a, c],
        "field.points.gte=5": [b, c],
        "field.points.lte=5": [a, b],
        "field.points.gte=2&field.points.lte=10": [b],
        "field.points=5": [b],
        "field.deadline.gte=2027-02-01": [b, c],
        "field.deadline.lte=2027-02-10": [a, b],
        "field.deadline=2027-03-10": [c],
        "field.flag=true": [a],
        "field.flag=false": [b],
        "field.platforms=linux": [a, b],
        "field.platforms=mac&field.platforms=windows": [b, c],
        f"field.owner={REPORTER}": [b],
        "field.note=a": [a],
        "field.platforms=linux&field.severity=minor": [b],
        "field.platforms=linux&field.points.gte=2": [b],
        "field.severity=critical&field.flag=true": [],
    }
    for query, expected in cases.items():
        assert await scene.keys("FLT", query) == expected, query
    assert d not in await scene.keys("FLT", "field.flag=false")
    for bad in (
        "field.unknown=1",
        "field.points=abc",
        "field.deadline.gte=tomorrow",
        "field.flag=yes",
        "field.severity.gte=a",
        "field.owner=me",
    ):
        refused = await scene.listed("FLT", bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["code"] == "validation_error"
    assert (await scene.listed("OTH", "field.severity=major")).status_code == 422


async def test_removing_options_in_use_needs_migrate(scene: Scene) -> None:
    scene.project("OPT")
    for key, kind, options in (
        ("severity", "select", SEVERITY),
        ("platforms", "multi_select", PLATFORMS),
    ):
        assert (
            await scene.add_field("OPT", key=key, name=key, type=kind, options=options)
        ).status_code == 201
    major = await scene.created(
        "OPT", fields={"severity": "major", "platforms": ["mac", "windows"]}
    )
    minor = await scene.created("OPT", fields={"severity": "minor", "platforms": ["linux"]})
    critical = await scene.created("OPT", fields={"severity": "critical", "platforms": ["mac"]})

    fewer = {"options": SEVERITY[:1] + SEVERITY[2:]}  # minor, critical
    refused = await scene.call(MAINTAINER, "PATCH", "/projects/OPT/fields/severity", json=fewer)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "option_in_use"
    assert refused.json()["counts"] == {"major": 1}
    assert (await scene.call(VIEWER, "GET", "/projects/OPT/fields/severity")).json()["version"] == 1

    changed = await scene.call(
        MAINTAINER,
        "PATCH",
        "/projects/OPT/fields/severity",
        json=fewer | {"migrate": {"major": "critical"}},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert (await scene.ticket(major["key"]))["fields"]["severity"] == "critical"
    assert ("fields.severity", "major", "critical") in await scene.history(major["key"])
    name, data = (await scene.ticket_events(major["id"]))[-1]
    assert (name, data["fields"]["severity"]) == ("ticket.updated", "critical")
    assert await scene.keys("OPT", "field.severity=critical") == [major["key"], critical["key"]]
    refused = await scene.create("OPT", fields={"severity": "major"})
    assert errors_at(refused) == [["body", "fields", "severity"]]

    # multi_select: `mac` becomes `linux`, `windows` is dropped.
    only_linux = {"options": PLATFORMS[:1]}
    refused = await scene.call(
        MAINTAINER, "PATCH", "/projects/OPT/fields/platforms", json=only_linux
    )
    assert refused.status_code == 409
    assert refused.json()["counts"] == {"mac": 2, "windows": 1}
    partly = await scene.call(
        MAINTAINER,
        "PATCH",
        "/projects/OPT/fields/platforms",
        json=only_linux | {"migrate": {"mac": "linux"}},
    )
    assert partly.status_code == 409
    assert partly.json()["counts"] == {"windows": 1}
    changed = await scene.call(
        MAINTAINER,
        "PATCH",
        "/projects/OPT/fields/platforms",
        json=only_linux | {"migrate": {"mac": "linux", "windows": None}},
    )
    assert changed.status_code == 200, changed.text
    assert (await scene.ticket(major["key"]))["fields"]["platforms"] == ["linux"]
    assert (await scene.ticket(minor["key"]))["fields"]["platforms"] == ["linux"]
    assert (await scene.ticket(critical["key"]))["fields"]["platforms"] == ["linux"]
    assert ("fields.platforms", ["mac", "windows"], ["linux"]) in await scene.history(major["key"])
    assert await scene.keys("OPT", "field.platforms=linux") == [
        major["key"],
        minor["key"],
        critical["key"],
    ]
    assert (await scene.listed("OPT", "field.platforms=mac")).status_code == 200
    assert await scene.keys("OPT", "field.platforms=mac") == []
    counted: int = await scene.db.fetchval(
        "SELECT count(*) FROM tickets.field_values WHERE value IN ('mac', 'windows', 'major')"
    )
    assert counted == 0


async def test_a_deleted_field_vanishes_at_once_and_its_key_returns_after_the_purge(
    scene: Scene,
) -> None:
    scene.project("DEL")
    created = await scene.add_field(
        "DEL", key="severity", name="S", type="select", options=SEVERITY
    )
    assert created.status_code == 201
    first = await scene.created("DEL", fields={"severity": "major"})
    second = await scene.created("DEL", fields={"severity": "minor"})
    assert await scene.keys("DEL", "field.severity=major") == [first["key"]]

    stale = await scene.call(
        MAINTAINER, "DELETE", "/projects/DEL/fields/severity", headers={"If-Match": '"9"'}
    )
    assert stale.status_code == 412
    deleted = await scene.call(MAINTAINER, "DELETE", "/projects/DEL/fields/severity")
    assert deleted.status_code == 204, deleted.text
    assert (await scene.ticket(first["key"]))["fields"] == {}
    listed = await scene.listed("DEL", "")
    assert [t["fields"] for t in listed.json()["items"]] == [{}, {}]
    assert (await scene.listed("DEL", "field.severity=major")).status_code == 422
    assert (await scene.call(VIEWER, "GET", "/projects/DEL/fields/severity")).status_code == 404
    assert (await scene.call(VIEWER, "GET", "/projects/DEL/fields")).json()["items"] == []
    refused = await scene.create("DEL", fields={"severity": "major"})
    assert errors_at(refused) == [["body", "fields", "severity"]]
    again = await scene.add_field("DEL", key="severity", name="S", type="text")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "field_exists"
    # A change of the ticket meanwhile does not bring the value back.
    assert (await scene.patch(second["key"], title="renamed")).status_code == 200
    assert (await scene.ticket(second["key"]))["fields"] == {}

    assert await scene.configuration.purge_deleted_fields() >= 1
    assert await scene.db.fetchval("SELECT count(*) FROM tickets.custom_fields") == 0
    assert await scene.db.fetchval("SELECT count(*) FROM tickets.field_values") == 0
    stored = await scene.db.fetch("SELECT fields FROM tickets.tickets")
    assert [json.loads(row["fields"]) for row in stored] == [{}, {}]
    assert await scene.configuration.purge_deleted_fields() == 0

    recreated = await scene.add_field(
        "DEL", key="severity", name="S", type="select", options=SEVERITY
    )
    assert recreated.status_code == 201, recreated.text
    assert (await scene.ticket(first["key"]))["fields"] == {}
    assert await scene.keys("DEL", "field.severity=major") == []
    third = await scene.created("DEL", fields={"severity": "major"})
    assert await scene.keys("DEL", "field.severity=major") == [third["key"]]


# -- 6. a member who leaves ------------------------------------------------------------------


async def test_a_member_who_leaves_is_cleared_from_user_fields(scene: Scene) -> None:
    project = scene.project("MEM")
    for key in ("owner", "tester"):
        assert (await scene.add_field("MEM", key=key, name=key, type="user")).status_code == 201
    kept = await scene.created("MEM", fields={"owner": str(DEV), "tester": str(REPORTER)})
    cleared = await scene.created("MEM", fields={"owner": str(REPORTER)})
    both = await scene.created("MEM", fields={"owner": str(REPORTER), "tester": str(REPORTER)})

    del project.members[REPORTER]
    await scene.tickets.member_left(project.id, REPORTER, OWNER)

    assert (await scene.ticket(kept["key"]))["fields"] == {"owner": str(DEV)}
    assert (await scene.ticket(cleared["key"]))["fields"] == {}
    assert (await scene.ticket(both["key"]))["fields"] == {}
    assert ("fields.owner", str(REPORTER), None) in await scene.history(cleared["key"])
    assert ("fields.tester", str(REPORTER), None) in await scene.history(kept["key"])
    assert ("fields.owner", str(DEV), None) not in await scene.history(kept["key"])
    name, data = (await scene.ticket_events(cleared["id"]))[-1]
    assert name == "ticket.updated"
    assert data["changes"] == {"fields.owner": {"from": str(REPORTER), "to": None}}
    assert data["fields"] == {}
    assert await scene.keys("MEM", f"field.owner={REPORTER}") == []
    assert await scene.keys("MEM", f"field.owner={DEV}") == [kept["key"]]
    # Again (the event may come twice): nothing more happens.
    history_before = await scene.history(both["key"])
    await scene.tickets.member_left(project.id, REPORTER, OWNER)
    assert await scene.history(both["key"]) == history_before
    refused = await scene.patch(kept["key"], fields={"owner": str(REPORTER)})
    assert refused.status_code == 422
    assert errors_at(refused) == [["body", "fields", "owner"]]


# -- 7. the change is one transaction --------------------------------------------------------

TABLES = (
    "tickets",
    "history",
    "outbox",
    "project_configs",
    "custom_fields",
    "field_values",
    "milestones",
    "relations",
)
# A workflow change with migrate: the config lock and read, the counts, the saved
# workflow, then per batch one UPDATE per moved ticket (in id order), their history and
# events, then the project's event and the COMMIT.
WORKFLOW_FAULTS = (
    "on the first ticket update",
    "on the last ticket update",
    "after the ticket updates",
    "after the tickets' events",
    "at the commit",
)


@pytest.mark.parametrize("fault", WORKFLOW_FAULTS)
async def test_a_fault_anywhere_in_a_workflow_change_leaves_nothing_of_it(
    scene: Scene, fault: str
) -> None:
    scene.project("ATOM")
    tickets = [await scene.created("ATOM", title=f"t{n}") for n in range(3)]
    assert (await scene.transition(tickets[2]["key"], "in_progress")).status_code == 200
    last = max(uuid.UUID(t["id"]) for t in tickets)
    faults = {
        "on the first ticket update": fault_on("UPDATE", "tickets.tickets"),
        "on the last ticket update": fault_on(
            "UPDATE", "tickets.tickets", when=f"OLD.id = '{last}'::uuid"
        ),
        "after the ticket updates": fault_on("INSERT", "tickets.history"),
        "after the tickets' events": fault_on(
            "INSERT", "tickets.outbox", when=routing_key_is("project.workflow_changed")
        ),
        "at the commit": fault_at_commit("INSERT", "tickets.outbox"),
    }
    body = CUSTOM | {"migrate": {"open": "new", "in_progress": "doing"}}

    changed = await assert_write_is_atomic(
        scene.db,
        faults[fault],
        lambda: scene.put_workflow("ATOM", body, 1),
        tables=TABLES,
        status=200,
        events=("ticket.status_changed",) * 3 + ("project.workflow_changed",),
    )
    assert changed.headers["etag"] == '"2"'
    statuses = [t["status"] for t in (await scene.listed("ATOM", "")).json()["items"]]
    assert statuses == ["new", "new", "doing"]
