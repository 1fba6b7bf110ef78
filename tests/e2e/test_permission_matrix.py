"""Every (role x endpoint) pair of projects, tickets, planning (milestones, relations,
children, bulk changes), tracker configuration and attachments, through the gateway.

Each case states who is allowed; everyone else gets the denied status: 403 for a member
whose role is too low, 404 for a non-member (who must not learn the project exists).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bugtracker_testkit import PASSWORD, register_and_login

pytestmark = pytest.mark.e2e

MEMBER_ROLES = ("viewer", "reporter", "developer", "maintainer", "owner")
CALLERS = (*MEMBER_ROLES, "admin", "outsider")


@dataclass
class Cast:
    client: httpx.Client
    ids: dict[str, str]
    headers: dict[str, dict[str, str]]
    # Waits until tickets has a project's latest change (it arrives as an event).
    settle_view: Callable[[str], None] = lambda _project_id: None

    def settle(self, world: World) -> None:
        self.settle_view(world.project_id)

    def login(self, email: str, password: str) -> dict[str, str]:
        login = self.client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}


@dataclass
class World:
    """A fresh project in which each cast member holds their role, and one ticket."""

    project_id: str
    key: str
    ticket_id: str
    target_id: str  # a viewer the member-management endpoints act on
    # What a case's `prepare` made in the world (a milestone, tickets, a relation), by name.
    made: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def cast(system: Any, infra: Any, settle_tickets_view: Callable[[str], None]) -> Iterator[Cast]:
    with httpx.Client(base_url=system.gateway_url, timeout=15) as client:
        cast = Cast(client, {}, {}, settle_tickets_view)
        for name in (*MEMBER_ROLES, "outsider", "target", "newcomer"):
            cast.ids[name], cast.headers[name] = register_and_login(client, name)
        admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        infra.create_admin(admin_email, PASSWORD)
        cast.headers["admin"] = cast.login(admin_email, PASSWORD)
        yield cast


@pytest.fixture(scope="module")
def shared_world(cast: Cast) -> World:
    """One world for the cases that change nothing."""
    return new_world(cast)


def new_world(cast: Cast) -> World:
    key = "M" + uuid.uuid4().hex[:7].upper()
    owner = cast.headers["owner"]
    project = cast.client.post("/api/v1/projects", json={"key": key, "name": "m"}, headers=owner)
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    for role in ("viewer", "reporter", "developer", "maintainer"):
        added = cast.client.post(
            f"/api/v1/projects/{project_id}/members",
            json={"user_id": cast.ids[role], "role": role},
            headers=owner,
        )
        assert added.status_code == 201, added.text
    cast.client.post(
        f"/api/v1/projects/{project_id}/members",
        json={"user_id": cast.ids["target"], "role": "viewer"},
        headers=owner,
    )
    ticket = cast.client.post(
        f"/api/v1/projects/{key}/tickets", json={"title": "t"}, headers=cast.headers["reporter"]
    )
    assert ticket.status_code == 201, ticket.text
    return World(project_id, key, ticket.json()["id"], cast.ids["target"])


@dataclass(frozen=True)
class Case:
    name: str
    allowed: frozenset[str]
    success: int
    call: Callable[[Cast, World, dict[str, str]], httpx.Response]
    prepare: Callable[[Cast, World], None] | None = None
    read_only: bool = False


def members_and(*extra: str) -> frozenset[str]:
    return frozenset((*MEMBER_ROLES, *extra))


def at_least(role: str) -> frozenset[str]:
    return frozenset((*MEMBER_ROLES[MEMBER_ROLES.index(role) :], "admin"))


def archive_first(cast: Cast, world: World) -> None:
    response = cast.client.post(
        f"/api/v1/projects/{world.project_id}/archive", headers=cast.headers["owner"]
    )
    assert response.status_code == 200
    cast.settle(world)


def delete_first(cast: Cast, world: World) -> None:
    response = cast.client.delete(
        f"/api/v1/projects/{world.project_id}", headers=cast.headers["owner"]
    )
    assert response.status_code == 204
    cast.settle(world)


def maintainers_ticket(cast: Cast, world: World, name: str) -> str:
    """A ticket of the world that a maintainer filed (so a reporter may not edit it as
    their own), made once per world and name; its id."""
    if name not in world.made:
        ticket = cast.client.post(
            f"/api/v1/projects/{world.key}/tickets",
            json={"title": name},
            headers=cast.headers["maintainer"],
        )
        assert ticket.status_code == 201, ticket.text
        world.made[name] = ticket.json()["id"]
    return world.made[name]


def milestone_first(cast: Cast, world: World) -> None:
    """A milestone in the world (once: the shared world's read cases share it)."""
    if "milestone" not in world.made:
        milestone = cast.client.post(
            f"/api/v1/projects/{world.key}/milestones",
            json={"name": "1.0", "due_date": "2027-03-01"},
            headers=cast.headers["maintainer"],
        )
        assert milestone.status_code == 201, milestone.text
        world.made["milestone"] = milestone.json()["id"]


def two_tickets_first(cast: Cast, world: World) -> None:
    maintainers_ticket(cast, world, "a")
    maintainers_ticket(cast, world, "b")


def relation_first(cast: Cast, world: World) -> None:
    """A relation between two tickets of a maintainer's: `a` blocks `b`."""
    two_tickets_first(cast, world)
    related = cast.client.post(
        f"/api/v1/tickets/{world.made['a']}/relations",
        json={"type": "blocks", "ticket_id": world.made["b"]},
        headers=cast.headers["maintainer"],
    )
    assert related.status_code == 201, related.text
    world.made["relation"] = related.json()["id"]


def milestone_and_ticket_first(cast: Cast, world: World) -> None:
    milestone_first(cast, world)
    maintainers_ticket(cast, world, "a")


def field_first(cast: Cast, world: World) -> None:
    """A custom field `severity` in the world (once: the shared world's read cases share
    it), made by the maintainer."""
    if "field" not in world.made:
        made = cast.client.post(
            f"/api/v1/projects/{world.key}/fields",
            json={
                "key": "severity",
                "name": "Severity",
                "type": "select",
                "options": [{"value": "low", "label": "Low"}, {"value": "high", "label": "High"}],
            },
            headers=cast.headers["maintainer"],
        )
        assert made.status_code == 201, made.text
        world.made["field"] = "severity"


def attachment_first(cast: Cast, world: World) -> None:
    """An attachment on the world's ticket (once: the shared world's read cases share it),
    uploaded by the maintainer: the deleting case's allowed are the uploader and those who
    may delete tickets, maintainers and above either way."""
    if "attachment" not in world.made:
        uploaded = cast.client.post(
            f"/api/v1/tickets/{world.ticket_id}/attachments",
            files={"file": ("log.txt", b"matrix log", "text/plain")},
            headers=cast.headers["maintainer"],
        )
        assert uploaded.status_code == 201, uploaded.text
        world.made["attachment"] = uploaded.json()["id"]


# A workflow replacing the default one: the world's ticket stays `open`, the other
# default statuses (unused) go.
NEW_WORKFLOW = {
    "statuses": [
        {"key": "open", "name": "Open", "category": "todo"},
        {"key": "triaged", "name": "Triaged", "category": "in_progress"},
        {"key": "done", "name": "Done", "category": "done"},
    ],
    "initial": "open",
    "transitions": [
        {"from": "open", "to": "triaged"},
        {"from": "triaged", "to": "done"},
        {"from": "done", "to": "open", "min_role": "reporter"},
    ],
}
NEW_TYPES = {"types": [{"key": "bug", "name": "Bug"}, {"key": "question", "name": "Question"}]}
# A fresh world's workflow and ticket types are at their first version.
FIRST_VERSION = {"If-Match": '"1"'}


CASES = (
    # projects
    Case(
        "get project",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.project_id}", headers=h),
        read_only=True,
    ),
    Case(
        "list members",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/members", headers=h),
        read_only=True,
    ),
    Case(
        "my role",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/members/me", headers=h),
        read_only=True,
    ),
    Case(
        "update project",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.patch(
            f"/api/v1/projects/{w.project_id}", json={"description": "d"}, headers=h
        ),
    ),
    Case(
        "archive",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.post(f"/api/v1/projects/{w.project_id}/archive", headers=h),
    ),
    Case(
        "unarchive",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.post(f"/api/v1/projects/{w.project_id}/unarchive", headers=h),
        prepare=archive_first,
    ),
    Case(
        "delete project",
        at_least("owner"),
        204,
        lambda c, w, h: c.client.delete(f"/api/v1/projects/{w.project_id}", headers=h),
    ),
    Case(
        "restore project",
        at_least("owner"),
        200,
        lambda c, w, h: c.client.post(f"/api/v1/projects/{w.project_id}/restore", headers=h),
        prepare=delete_first,
    ),
    Case(
        "add member",
        at_least("maintainer"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/projects/{w.project_id}/members",
            json={"user_id": c.ids["newcomer"], "role": "viewer"},
            headers=h,
        ),
    ),
    Case(
        "change role",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.patch(
            f"/api/v1/projects/{w.project_id}/members/{w.target_id}",
            json={"role": "reporter"},
            headers=h,
        ),
    ),
    Case(
        "remove member",
        at_least("maintainer"),
        204,
        lambda c, w, h: c.client.delete(
            f"/api/v1/projects/{w.project_id}/members/{w.target_id}", headers=h
        ),
    ),
    # tickets
    Case(
        "create ticket",
        at_least("reporter"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/projects/{w.key}/tickets", json={"title": "x"}, headers=h
        ),
    ),
    Case(
        "list tickets",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/tickets", headers=h),
        read_only=True,
    ),
    Case(
        "get ticket",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/tickets/{w.ticket_id}", headers=h),
        read_only=True,
    ),
    Case(
        "get ticket by key",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/tickets/{w.key}-1", headers=h),
        read_only=True,
    ),
    Case(
        "assign ticket",
        at_least("developer"),
        200,
        lambda c, w, h: c.client.put(
            f"/api/v1/tickets/{w.ticket_id}/assignee",
            json={"assignee_id": c.ids["developer"]},
            headers=h,
        ),
    ),
    # milestones
    Case(
        "list milestones",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/milestones", headers=h),
        read_only=True,
    ),
    Case(
        "create milestone",
        at_least("maintainer"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/projects/{w.key}/milestones", json={"name": "2.0"}, headers=h
        ),
    ),
    Case(
        "get milestone",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/milestones/{w.made['milestone']}", headers=h),
        prepare=milestone_first,
        read_only=True,
    ),
    Case(
        "update milestone",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.patch(
            f"/api/v1/milestones/{w.made['milestone']}", json={"state": "closed"}, headers=h
        ),
        prepare=milestone_first,
    ),
    Case(
        "delete milestone",
        at_least("maintainer"),
        204,
        lambda c, w, h: c.client.delete(f"/api/v1/milestones/{w.made['milestone']}", headers=h),
        prepare=milestone_first,
    ),
    Case(
        "set a ticket's milestone",
        at_least("developer"),
        200,
        lambda c, w, h: c.client.patch(
            f"/api/v1/tickets/{w.made['a']}",
            json={"milestone_id": w.made["milestone"]},
            headers=h,
        ),
        prepare=milestone_and_ticket_first,
    ),
    # relations, children, bulk
    Case(
        "list relations",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/tickets/{w.ticket_id}/relations", headers=h),
        read_only=True,
    ),
    Case(
        "add relation",
        at_least("developer"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/tickets/{w.made['a']}/relations",
            json={"type": "blocked_by", "ticket_id": w.made["b"]},
            headers=h,
        ),
        prepare=two_tickets_first,
    ),
    Case(
        "delete relation",
        at_least("developer"),
        204,
        lambda c, w, h: c.client.delete(
            f"/api/v1/tickets/{w.made['b']}/relations/{w.made['relation']}", headers=h
        ),
        prepare=relation_first,
    ),
    Case(
        "children",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/tickets/{w.ticket_id}/children", headers=h),
        read_only=True,
    ),
    Case(
        "bulk change",
        at_least("developer"),
        200,
        lambda c, w, h: c.client.post(
            f"/api/v1/projects/{w.key}/tickets/bulk",
            json={"tickets": [f"{w.key}-1"], "set": {"priority": "high"}},
            headers=h,
        ),
    ),
    # tracker configuration (docs/adr/0040)
    Case(
        "get workflow",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/workflow", headers=h),
        read_only=True,
    ),
    Case(
        "replace workflow",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.put(
            f"/api/v1/projects/{w.key}/workflow",
            json=NEW_WORKFLOW,
            headers=h | FIRST_VERSION,
        ),
    ),
    Case(
        "get ticket types",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/ticket-types", headers=h),
        read_only=True,
    ),
    Case(
        "replace ticket types",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.put(
            f"/api/v1/projects/{w.key}/ticket-types",
            json=NEW_TYPES | {"migrate": {"feature": "bug", "task": "bug", "improvement": "bug"}},
            headers=h | FIRST_VERSION,
        ),
    ),
    Case(
        "list fields",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/fields", headers=h),
        read_only=True,
    ),
    Case(
        "create field",
        at_least("maintainer"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/projects/{w.key}/fields",
            json={"key": "customer", "name": "Customer", "type": "text"},
            headers=h,
        ),
    ),
    Case(
        "get field",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/projects/{w.key}/fields/severity", headers=h),
        prepare=field_first,
        read_only=True,
    ),
    Case(
        "update field",
        at_least("maintainer"),
        200,
        lambda c, w, h: c.client.patch(
            f"/api/v1/projects/{w.key}/fields/severity", json={"name": "Impact"}, headers=h
        ),
        prepare=field_first,
    ),
    Case(
        "delete field",
        at_least("maintainer"),
        204,
        lambda c, w, h: c.client.delete(f"/api/v1/projects/{w.key}/fields/severity", headers=h),
        prepare=field_first,
    ),
    # attachments (docs/adr/0041)
    Case(
        "upload attachment",
        at_least("reporter"),
        201,
        lambda c, w, h: c.client.post(
            f"/api/v1/tickets/{w.ticket_id}/attachments",
            files={"file": ("notes.txt", b"a note", "text/plain")},
            headers=h,
        ),
    ),
    Case(
        "list attachments",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/tickets/{w.ticket_id}/attachments", headers=h),
        prepare=attachment_first,
        read_only=True,
    ),
    Case(
        "get attachment",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(f"/api/v1/attachments/{w.made['attachment']}", headers=h),
        prepare=attachment_first,
        read_only=True,
    ),
    Case(
        "download attachment",
        members_and("admin"),
        200,
        lambda c, w, h: c.client.get(
            f"/api/v1/attachments/{w.made['attachment']}/content", headers=h
        ),
        prepare=attachment_first,
        read_only=True,
    ),
    Case(
        "delete attachment",
        at_least("maintainer"),
        204,
        lambda c, w, h: c.client.delete(f"/api/v1/attachments/{w.made['attachment']}", headers=h),
        prepare=attachment_first,
    ),
)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_role_matrix(cast: Cast, shared_world: World, case: Case, caller: str) -> None:
    world = shared_world if case.read_only else new_world(cast)
    if case.prepare:
        case.prepare(cast, world)
    response = case.call(cast, world, cast.headers[caller])
    if caller in case.allowed:
        expected = case.success
    elif caller == "outsider":
        expected = 404
    else:
        expected = 403
    assert response.status_code == expected, (case.name, caller, response.text)
    if expected >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_removed_member_loses_access(cast: Cast) -> None:
    world = new_world(cast)
    developer = cast.headers["developer"]
    ticket_url = f"/api/v1/tickets/{world.ticket_id}"
    assert cast.client.get(ticket_url, headers=developer).status_code == 200
    removed = cast.client.delete(
        f"/api/v1/projects/{world.project_id}/members/{cast.ids['developer']}",
        headers=cast.headers["owner"],
    )
    assert removed.status_code == 204
    cast.settle(world)
    assert cast.client.get(ticket_url, headers=developer).status_code == 404
    assert cast.client.get(f"/api/v1/projects/{world.key}", headers=developer).status_code == 404
    create = cast.client.post(
        f"/api/v1/projects/{world.key}/tickets", json={"title": "x"}, headers=developer
    )
    assert create.status_code == 404


def test_a_demoted_member_loses_rights(cast: Cast) -> None:
    world = new_world(cast)
    developer = cast.headers["developer"]
    assign = f"/api/v1/tickets/{world.ticket_id}/assignee"
    body = {"assignee_id": cast.ids["developer"]}
    assert cast.client.put(assign, json=body, headers=developer).status_code == 200
    cast.client.patch(
        f"/api/v1/projects/{world.project_id}/members/{cast.ids['developer']}",
        json={"role": "viewer"},
        headers=cast.headers["owner"],
    )
    cast.settle(world)
    assert cast.client.put(assign, json=body, headers=developer).status_code == 403


def test_a_reporter_relates_and_plans_only_the_tickets_they_reported(cast: Cast) -> None:
    """The one right the matrix cannot show: a reporter edits their own tickets (the
    world's ticket is the reporter's), relations and milestone included, and no others."""
    world = new_world(cast)
    reporter = cast.headers["reporter"]
    own = world.ticket_id
    theirs = maintainers_ticket(cast, world, "a")
    milestone_first(cast, world)

    added = cast.client.post(
        f"/api/v1/tickets/{own}/relations",
        json={"type": "blocks", "ticket_id": theirs},
        headers=reporter,
    )
    assert added.status_code == 201, added.text
    assert added.json()["type"] == "blocks"
    assert added.json()["ticket"]["id"] == theirs
    relation_id = added.json()["id"]
    seen = cast.client.get(f"/api/v1/tickets/{theirs}/relations", headers=reporter)
    assert [(r["id"], r["type"]) for r in seen.json()["items"]] == [(relation_id, "blocked_by")]

    # From the other side, the same relation is someone else's ticket's: not theirs to edit.
    for response in (
        cast.client.post(
            f"/api/v1/tickets/{theirs}/relations",
            json={"type": "relates_to", "ticket_id": own},
            headers=reporter,
        ),
        cast.client.delete(f"/api/v1/tickets/{theirs}/relations/{relation_id}", headers=reporter),
        cast.client.patch(
            f"/api/v1/tickets/{theirs}",
            json={"milestone_id": world.made["milestone"]},
            headers=reporter,
        ),
    ):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    planned = cast.client.patch(
        f"/api/v1/tickets/{own}", json={"milestone_id": world.made["milestone"]}, headers=reporter
    )
    assert planned.status_code == 200, planned.text
    assert planned.json()["milestone_id"] == world.made["milestone"]
    removed = cast.client.delete(f"/api/v1/tickets/{own}/relations/{relation_id}", headers=reporter)
    assert removed.status_code == 204, removed.text
    assert cast.client.get(f"/api/v1/tickets/{own}/relations", headers=reporter).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_an_archived_project_refuses_ticket_writes(cast: Cast) -> None:
    world = new_world(cast)
    archive_first(cast, world)
    owner = cast.headers["owner"]
    create = cast.client.post(
        f"/api/v1/projects/{world.key}/tickets", json={"title": "x"}, headers=owner
    )
    assert create.status_code == 409
    assert create.json()["code"] == "project_archived"
    assign = cast.client.put(
        f"/api/v1/tickets/{world.ticket_id}/assignee",
        json={"assignee_id": cast.ids["developer"]},
        headers=owner,
    )
    assert assign.status_code == 409
    assert cast.client.get(f"/api/v1/tickets/{world.ticket_id}", headers=owner).status_code == 200


def test_tickets_of_a_deleted_project_vanish(cast: Cast) -> None:
    world = new_world(cast)
    delete_first(cast, world)
    owner = cast.headers["owner"]
    assert cast.client.get(f"/api/v1/tickets/{world.ticket_id}", headers=owner).status_code == 404


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/api/v1/projects/{project_id}", "PATCH", {"key": "HACK"}),
        ("/api/v1/projects/{project_id}", "PATCH", {"id": "x", "name": "n"}),
        ("/api/v1/projects/{project_id}", "PATCH", {"owner": "me"}),
        ("/api/v1/projects/{key}/tickets", "POST", {"title": "t", "key": "X-1"}),
        ("/api/v1/projects/{key}/tickets", "POST", {"title": "t", "reporter_id": "x"}),
        ("/api/v1/projects/{key}/tickets", "POST", {"title": "t", "version": 9}),
        ("/api/v1/projects/{project_id}/members", "POST", {"user_id": "x", "owner": True}),
    ],
)
def test_mass_assignment_is_rejected(
    cast: Cast, shared_world: World, path: str, method: str, body: dict[str, Any]
) -> None:
    url = path.format(project_id=shared_world.project_id, key=shared_world.key)
    response = cast.client.request(method, url, json=body, headers=cast.headers["owner"])
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
