"""A release planned and shipped through the gateway by real users: a milestone, an epic
with children, a blocker, a bulk assignment (one notification for it), the dependency
rules that hold back `done` and `closed`, the unblocked notice, the milestone's progress,
closing and deleting it; and relations across projects, seen only while the caller may
see both."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bugtracker_testkit import register_and_login, wait_until

pytestmark = pytest.mark.e2e

Headers = dict[str, str]


def new_project(
    api: httpx.Client,
    owner: Headers,
    members: dict[str, str],
    settle: Callable[[str], None],
) -> tuple[str, str]:
    """A project of `owner`'s with `members` (user id -> role), the tickets service's view
    of it caught up; its key and id."""
    key = "L" + uuid.uuid4().hex[:6].upper()
    project = api.post("/api/v1/projects", json={"key": key, "name": "Release"}, headers=owner)
    assert project.status_code == 201, project.text
    for user_id, role in members.items():
        added = api.post(
            f"/api/v1/projects/{key}/members",
            json={"user_id": user_id, "role": role},
            headers=owner,
        )
        assert added.status_code == 201, added.text
    settle(project.json()["id"])
    return key, project.json()["id"]


def file_ticket(api: httpx.Client, key: str, headers: Headers, **fields: Any) -> dict[str, Any]:
    created = api.post(f"/api/v1/projects/{key}/tickets", json=fields, headers=headers)
    assert created.status_code == 201, created.text
    ticket: dict[str, Any] = created.json()
    return ticket


def move(api: httpx.Client, ticket: dict[str, Any], to: str, headers: Headers) -> httpx.Response:
    body = {"to": to} | ({"resolution": "fixed"} if to == "closed" else {})
    return api.post(f"/api/v1/tickets/{ticket['id']}/transitions", json=body, headers=headers)


def finish(api: httpx.Client, ticket: dict[str, Any], headers: Headers) -> None:
    """open -> in_progress -> done."""
    for to in ("in_progress", "done"):
        moved = move(api, ticket, to, headers)
        assert moved.status_code == 200, moved.text


def notifications(api: httpx.Client, headers: Headers, type_: str) -> list[dict[str, Any]]:
    listed = api.get("/api/v1/notifications", params={"limit": 100}, headers=headers)
    assert listed.status_code == 200, listed.text
    return [n for n in listed.json()["items"] if n["type"] == type_]


def keys(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(t["key"] for t in response.json()["items"])


@dataclass
class Release:
    """The project of the release, its people (ids and Authorization headers), and what
    the stages make: the milestone and the tickets."""

    api: httpx.Client
    key: str
    project_id: str
    ids: dict[str, str]
    headers: dict[str, Headers]
    milestone: dict[str, Any] = field(default_factory=dict)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def milestone_url(self) -> str:
        return f"/api/v1/milestones/{self.milestone['id']}"

    @property
    def planned(self) -> list[dict[str, Any]]:
        """The tickets of the milestone."""
        names = ("epic", "csv", "json", "blocker", "blocked")
        return [self.tickets[name] for name in names]


@pytest.fixture
def release(api: httpx.Client, settle_tickets_view: Callable[[str], None]) -> Release:
    ids: dict[str, str] = {}
    headers: dict[str, Headers] = {}
    # Olga owns the project; Maya maintains it, Rita reports, Dana leads and Devon works.
    for name in ("olga", "maya", "rita", "dana", "devon"):
        ids[name], headers[name] = register_and_login(api, name)
    roles = {"maya": "maintainer", "rita": "reporter", "dana": "developer", "devon": "developer"}
    key, project_id = new_project(
        api,
        headers["olga"],
        {ids[name]: role for name, role in roles.items()},
        settle_tickets_view,
    )
    return Release(api, key, project_id, ids, headers)


def plan_the_milestone(r: Release) -> None:
    """The maintainer plans a milestone; its name is unique in the project."""
    api, maya = r.api, r.headers["maya"]
    created = api.post(
        f"/api/v1/projects/{r.key}/milestones",
        json={"name": "1.0", "description": "First release", "due_date": "2027-03-01"},
        headers=maya,
    )
    assert created.status_code == 201, created.text
    r.milestone = created.json()
    assert created.headers["location"] == r.milestone_url
    assert r.milestone["project_id"] == r.project_id
    assert (r.milestone["state"], r.milestone["progress"]) == ("open", {"total": 0, "done": 0})
    taken = api.post(f"/api/v1/projects/{r.key}/milestones", json={"name": "1.0"}, headers=maya)
    assert taken.status_code == 409, taken.text
    assert taken.json()["code"] == "milestone_exists"


def file_the_tickets(r: Release) -> None:
    """The reporter files an epic with two children, and a ticket blocked by another."""
    api, rita, dana = r.api, r.headers["rita"], r.headers["dana"]
    epic = r.tickets["epic"] = file_ticket(api, r.key, rita, title="Epic: exports", type="feature")
    for name in ("csv", "json"):
        child = file_ticket(api, r.key, rita, title=f"Export as {name}", parent_id=epic["id"])
        assert child["parent_id"] == epic["id"]
        r.tickets[name] = child
    listed = api.get(f"/api/v1/tickets/{epic['key']}/children", headers=r.headers["devon"])
    assert keys(listed) == sorted(r.tickets[name]["key"] for name in ("csv", "json"))
    blocker = r.tickets["blocker"] = file_ticket(api, r.key, rita, title="Migrate the schema")
    blocked = r.tickets["blocked"] = file_ticket(api, r.key, rita, title="Scheduled exports")

    related = api.post(
        f"/api/v1/tickets/{blocked['id']}/relations",
        json={"type": "blocked_by", "key": blocker["key"]},
        headers=rita,
    )
    assert related.status_code == 201, related.text
    relation = related.json()
    assert relation["type"] == "blocked_by"
    assert relation["ticket"] == {
        "id": blocker["id"],
        "key": blocker["key"],
        "title": blocker["title"],
        "status": "open",
        "project_id": r.project_id,
    }
    seen = api.get(f"/api/v1/tickets/{blocker['id']}/relations", headers=r.headers["devon"])
    assert [(x["id"], x["type"], x["ticket"]["key"]) for x in seen.json()["items"]] == [
        (relation["id"], "blocks", blocked["key"])
    ]
    again = api.post(
        f"/api/v1/tickets/{blocker['id']}/relations",
        json={"type": "blocks", "ticket_id": blocked["id"]},
        headers=dana,
    )
    assert (again.status_code, again.json()["code"]) == (409, "relation_exists"), again.text
    cycle = api.post(
        f"/api/v1/tickets/{blocker['id']}/relations",
        json={"type": "blocked_by", "ticket_id": blocked["id"]},
        headers=dana,
    )
    assert (cycle.status_code, cycle.json()["code"]) == (409, "relation_cycle"), cycle.text


def bulk_assign(r: Release) -> None:
    """The lead assigns the release's tickets to Devon and plans them, in one bulk change;
    Devon hears of it once, not once per ticket: a later assignment of his (notified after
    every event of the bulk change) finds still one."""
    api, devon, devon_id = r.api, r.headers["devon"], r.ids["devon"]
    epic = r.tickets["epic"]
    missing = f"{r.key}-999"
    rejected = api.post(
        f"/api/v1/projects/{r.key}/tickets/bulk",
        json={"tickets": [epic["key"], missing], "set": {"assignee_id": devon_id}},
        headers=r.headers["dana"],
    )
    assert rejected.status_code == 422, rejected.text
    assert rejected.json()["code"] == "bulk_rejected"
    assert [(e["ticket"], e["code"]) for e in rejected.json()["errors"]] == [(missing, "not_found")]
    untouched = api.get(f"/api/v1/tickets/{epic['id']}", headers=devon).json()
    assert (untouched["assignee_id"], untouched["version"]) == (None, epic["version"])

    bulk = api.post(
        f"/api/v1/projects/{r.key}/tickets/bulk",
        json={
            "tickets": [t["key"] for t in r.planned],
            "set": {"assignee_id": devon_id, "milestone_id": r.milestone["id"]},
        },
        headers=r.headers["dana"],
    )
    assert bulk.status_code == 200, bulk.text
    after = {t["id"]: t for t in bulk.json()["items"]}
    assert set(after) == {t["id"] for t in r.planned}
    for ticket in r.planned:
        changed = after[ticket["id"]]
        assert (changed["assignee_id"], changed["milestone_id"]) == (devon_id, r.milestone["id"])
        assert changed["version"] > ticket["version"]
    planned = api.get(
        f"/api/v1/projects/{r.key}/tickets", params={"milestone": r.milestone["id"]}, headers=devon
    )
    assert keys(planned) == sorted(t["key"] for t in r.planned)
    progress = api.get(r.milestone_url, headers=devon).json()["progress"]
    assert progress == {"total": len(r.planned), "done": 0}

    bulk_ids = {t["id"] for t in r.planned}

    def bulk_notices() -> list[dict[str, Any]]:
        return [
            n for n in notifications(api, devon, "ticket.assigned") if n["ticket_id"] in bulk_ids
        ]

    first = wait_until(bulk_notices, lambda found: len(found) >= 1, within=20)
    assert [n["actor_id"] for n in first] == [r.ids["dana"]]
    marker = r.tickets["marker"] = file_ticket(
        api, r.key, r.headers["dana"], title="Release notes", assignee_id=devon_id
    )
    wait_until(
        lambda: notifications(api, devon, "ticket.assigned"),
        lambda found: any(n["ticket_id"] == marker["id"] for n in found),
        within=20,
    )
    assert len(bulk_notices()) == 1, bulk_notices()


def finish_the_blocked_ticket(r: Release) -> None:
    """The blocked ticket is listed as such and cannot be done before its blocker; the
    lead finishes the blocker, and Devon, the blocked ticket's assignee, hears of it."""
    api, devon = r.api, r.headers["devon"]
    blocker, blocked = r.tickets["blocker"], r.tickets["blocked"]
    listed = api.get(f"/api/v1/projects/{r.key}/tickets", params={"is": "blocked"}, headers=devon)
    assert keys(listed) == [blocked["key"]]
    assert move(api, blocked, "in_progress", devon).status_code == 200
    refused = move(api, blocked, "done", devon)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "unfinished_dependencies"
    assert [b["key"] for b in problem["blockers"]] == [blocker["key"]]
    assert problem["children"] == []

    finish(api, blocker, r.headers["dana"])
    unblocked = wait_until(
        lambda: notifications(api, devon, "ticket.unblocked"),
        lambda found: any(n["ticket_id"] == blocked["id"] for n in found),
        within=20,
    )
    notices = [n for n in unblocked if n["ticket_id"] == blocked["id"]]
    assert [n["actor_id"] for n in notices] == [r.ids["dana"]]
    listed = api.get(f"/api/v1/projects/{r.key}/tickets", params={"is": "blocked"}, headers=devon)
    assert keys(listed) == []
    done = move(api, blocked, "done", devon)
    assert done.status_code == 200, done.text


def close_the_epic(r: Release) -> None:
    """The epic closes only once its children are done."""
    api, rita = r.api, r.headers["rita"]
    epic, children = r.tickets["epic"], [r.tickets["csv"], r.tickets["json"]]
    refused = move(api, epic, "closed", rita)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "unfinished_dependencies"
    assert sorted(c["key"] for c in refused.json()["children"]) == sorted(
        child["key"] for child in children
    )
    assert refused.json()["blockers"] == []
    for child in children:
        finish(api, child, r.headers["devon"])
    closed = move(api, epic, "closed", rita)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    finish(api, r.tickets["marker"], r.headers["devon"])  # not planned: it does not count


def close_the_milestone(r: Release) -> None:
    """Every ticket of the milestone is done or closed; the maintainer closes it, under
    If-Match."""
    api, maya = r.api, r.headers["maya"]
    got = api.get(r.milestone_url, headers=maya)
    assert got.status_code == 200, got.text
    assert got.json()["progress"] == {"total": len(r.planned), "done": len(r.planned)}
    closed = {"state": "closed"}
    stale = api.patch(r.milestone_url, json=closed, headers=maya | {"If-Match": '"999"'})
    assert stale.status_code == 412, stale.text
    closing = api.patch(
        r.milestone_url, json=closed, headers=maya | {"If-Match": got.headers["etag"]}
    )
    assert closing.status_code == 200, closing.text
    assert closing.json()["state"] == "closed"
    assert closing.json()["version"] > got.json()["version"]
    assert closing.headers["etag"] != got.headers["etag"]
    listed = {
        state: [
            m["id"]
            for m in api.get(
                f"/api/v1/projects/{r.key}/milestones",
                params={"state": state},
                headers=r.headers["devon"],
            ).json()["items"]
        ]
        for state in ("open", "closed", "all")
    }
    assert listed == {"open": [], "closed": [r.milestone["id"]], "all": [r.milestone["id"]]}


def delete_the_milestone(r: Release) -> None:
    """Deleting it takes it off its tickets, each with a history entry."""
    api, devon = r.api, r.headers["devon"]
    assert api.delete(r.milestone_url, headers=r.headers["maya"]).status_code == 204
    assert api.get(r.milestone_url, headers=r.headers["maya"]).status_code == 404
    milestone_id = r.milestone["id"]
    for ticket in r.planned:
        url = f"/api/v1/tickets/{ticket['id']}"
        assert api.get(url, headers=devon).json()["milestone_id"] is None
        history = api.get(f"{url}/history", headers=devon).json()["items"]
        assert [(h["from"], h["to"]) for h in history if h["field"] == "milestone_id"] == [
            (None, milestone_id),
            (milestone_id, None),
        ], history
    unplanned = api.get(
        f"/api/v1/projects/{r.key}/tickets", params={"milestone": "none"}, headers=devon
    )
    assert keys(unplanned) == sorted(t["key"] for t in r.tickets.values())


def test_a_release_from_milestone_to_done(release: Release) -> None:
    plan_the_milestone(release)
    file_the_tickets(release)
    bulk_assign(release)
    finish_the_blocked_ticket(release)
    close_the_epic(release)
    close_the_milestone(release)
    delete_the_milestone(release)


def test_relations_across_projects_follow_what_the_caller_may_see(
    api: httpx.Client, settle_tickets_view: Callable[[str], None]
) -> None:
    _, owner = register_and_login(api, "olga")
    dana_id, dana = register_and_login(api, "dana")  # developer here, viewer there
    devon_id, devon = register_and_login(api, "devon")  # developer here only
    here, _ = new_project(
        api, owner, {dana_id: "developer", devon_id: "developer"}, settle_tickets_view
    )
    there, there_id = new_project(api, owner, {dana_id: "viewer"}, settle_tickets_view)
    ours = file_ticket(api, here, owner, title="Login page slow")
    theirs = file_ticket(api, there, owner, title="Auth service slow")

    # Dana sees both projects: she may relate a ticket she edits to one she only reads.
    related = api.post(
        f"/api/v1/tickets/{ours['id']}/relations",
        json={"type": "relates_to", "key": theirs["key"]},
        headers=dana,
    )
    assert related.status_code == 201, related.text
    relation = related.json()
    assert (relation["type"], relation["ticket"]["project_id"]) == ("relates_to", there_id)
    seen_there = api.get(f"/api/v1/tickets/{theirs['id']}/relations", headers=owner).json()
    assert [(r["id"], r["ticket"]["id"]) for r in seen_there["items"]] == [
        (relation["id"], ours["id"])
    ]
    # ...but not plan it with the other project's milestone, nor make it a parent there.
    milestone = api.post(
        f"/api/v1/projects/{there}/milestones", json={"name": "2.0"}, headers=owner
    ).json()
    wrong_milestone = api.patch(
        f"/api/v1/tickets/{ours['id']}", json={"milestone_id": milestone["id"]}, headers=dana
    )
    assert wrong_milestone.status_code == 422, wrong_milestone.text
    assert wrong_milestone.json()["code"] == "invalid_milestone"
    wrong_parent = api.patch(
        f"/api/v1/tickets/{ours['id']}", json={"parent_id": theirs["id"]}, headers=dana
    )
    assert wrong_parent.status_code == 422, wrong_parent.text
    assert wrong_parent.json()["code"] == "invalid_parent"

    # Devon does not see the other project: its ticket does not exist for him.
    for other in ({"ticket_id": theirs["id"]}, {"key": theirs["key"]}):
        hidden = api.post(
            f"/api/v1/tickets/{ours['id']}/relations",
            json={"type": "blocks"} | other,
            headers=devon,
        )
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["code"] == "not_found"
    assert api.get(f"/api/v1/tickets/{ours['id']}/relations", headers=devon).json()["items"] == []

    # Once Dana leaves the other project, the relation leaves her list too.
    mine = api.get(f"/api/v1/tickets/{ours['id']}/relations", headers=dana).json()["items"]
    assert [r["id"] for r in mine] == [relation["id"]]
    removed = api.delete(f"/api/v1/projects/{there}/members/{dana_id}", headers=owner)
    assert removed.status_code == 204, removed.text
    settle_tickets_view(there_id)
    wait_until(
        lambda: api.get(f"/api/v1/tickets/{ours['id']}/relations", headers=dana).json(),
        lambda page: page["items"] == [],
    )
    gone = api.delete(f"/api/v1/tickets/{ours['id']}/relations/{relation['id']}", headers=dana)
    assert gone.status_code == 404, gone.text
    still = api.get(f"/api/v1/tickets/{theirs['id']}/relations", headers=owner).json()["items"]
    assert [r["id"] for r in still] == [relation["id"]]
