"""The typed `query` of ticket lists, saved filters and exports (docs/adr/0045), against
the run's PostgreSQL: every term compiled to SQL and answered by the database."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.application import ticket_export

pytestmark = pytest.mark.integration

OWNER, DEV, REPORTER, VIEWER, OTHER = (uuid.uuid4() for _ in range(5))
ROLES = {
    OWNER: ProjectRole.OWNER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


def email(user_id: uuid.UUID) -> str:
    """The e-mail the faked projects service gives a member (tests/conftest.py)."""
    return f"{str(user_id)[:8]}@example.com"


async def found(
    api: Any, query: str, who: uuid.UUID = DEV, project: str | None = "QRY", **params: str
) -> list[str]:
    path = f"/api/v1/projects/{project}/tickets" if project else "/api/v1/tickets"
    response = await api.client.get(
        path, params={"query": query, "limit": "100", **params}, headers=api.headers(who)
    )
    assert response.status_code == 200, response.text
    return sorted(t["key"] for t in response.json()["items"])


async def problem(api: Any, query: str, project: str | None = "QRY") -> dict[str, Any]:
    path = f"/api/v1/projects/{project}/tickets" if project else "/api/v1/tickets"
    response = await api.client.get(path, params={"query": query}, headers=api.headers(DEV))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def post(api: Any, path: str, body: dict[str, Any], who: uuid.UUID = OWNER) -> Any:
    response = await api.client.post(path, json=body, headers=api.headers(who))
    assert response.status_code in (200, 201), response.text
    return response.json()


async def scene(api: Any) -> dict[str, Any]:
    """Project QRY: five tickets that differ in every way a term can tell apart."""
    api.projects.add("QRY", ROLES)
    api.projects.add("OTH", {DEV: ProjectRole.DEVELOPER})
    await post(api, "/api/v1/projects/QRY/fields", {"key": "effort", "name": "E", "type": "number"})
    release = await post(api, "/api/v1/projects/QRY/milestones", {"name": "v1.0"})
    specs: list[dict[str, Any]] = [
        {"title": "Crash on save", "type": "bug", "priority": "critical", "labels": ["ui"]},
        {
            "title": "Dark theme",
            "type": "feature",
            "priority": "low",
            "labels": ["ui", "wontfix"],
            "description": "=HYPERLINK(1) users want a dark theme",
            "due_date": "2026-12-01",
            "milestone_id": release["id"],
            "fields": {"effort": 3},
        },
        {"title": "Slow search", "type": "bug", "priority": "high", "fields": {"effort": 8}},
        {"title": "Write docs", "type": "task", "priority": "medium", "due_date": "2027-06-01"},
    ]
    made = [(await api.create(REPORTER, "QRY", **spec)).json() for spec in specs]
    child = (await api.create(DEV, "QRY", title="Crash detail", parent_id=made[0]["id"])).json()
    await api.client.put(
        "/api/v1/tickets/QRY-3/assignee", json={"assignee_id": str(DEV)}, headers=api.headers(DEV)
    )
    for to in ("in_progress", "done"):
        moved = await api.client.post(
            "/api/v1/tickets/QRY-4/transitions", json={"to": to}, headers=api.headers(DEV)
        )
        assert moved.status_code == 200, moved.text
    await post(api, "/api/v1/tickets/QRY-1/relations", {"type": "blocks", "key": "QRY-2"}, DEV)
    await api.create(DEV, "OTH", title="Crash elsewhere", priority="critical")
    return {"tickets": [*made, child], "milestone": release}


async def test_every_term_of_the_query_language(tickets_api: Any) -> None:
    await scene(tickets_api)
    api = tickets_api
    assert await found(api, "status:open") == ["QRY-1", "QRY-2", "QRY-3", "QRY-5"]
    assert await found(api, "-status:open,in_progress") == ["QRY-4"]
    assert await found(api, "assignee:@me") == ["QRY-3"]
    assert await found(api, f"assignee:{email(DEV)}", who=VIEWER) == ["QRY-3"]
    assert await found(api, "assignee:none") == ["QRY-1", "QRY-2", "QRY-4", "QRY-5"]
    assert await found(api, "-assignee:@me") == ["QRY-1", "QRY-2", "QRY-4", "QRY-5"]
    assert await found(api, "reporter:@me", who=REPORTER) == ["QRY-1", "QRY-2", "QRY-3", "QRY-4"]
    assert await found(api, f"reporter:{email(DEV)}") == ["QRY-5"]
    assert await found(api, "label:ui") == ["QRY-1", "QRY-2"]
    assert await found(api, "label:ui -label:wontfix") == ["QRY-1"]
    assert await found(api, "priority:>=high") == ["QRY-1", "QRY-3"]
    assert await found(api, "priority:low,medium") == ["QRY-2", "QRY-4", "QRY-5"]
    assert await found(api, "-priority:>=high") == ["QRY-2", "QRY-4", "QRY-5"]
    assert await found(api, "type:bug") == ["QRY-1", "QRY-3", "QRY-5"]  # the first type
    assert await found(api, 'milestone:"V1.0"') == ["QRY-2"]
    assert await found(api, "milestone:none") == ["QRY-1", "QRY-3", "QRY-4", "QRY-5"]
    assert await found(api, "is:open") == ["QRY-1", "QRY-2", "QRY-3", "QRY-5"]
    assert await found(api, "is:closed") == ["QRY-4"]
    assert await found(api, "is:blocked") == ["QRY-2"]
    assert await found(api, "-is:blocked is:unassigned") == ["QRY-1", "QRY-4", "QRY-5"]
    assert await found(api, "has:attachment") == []
    assert await found(api, "-has:attachment is:closed") == ["QRY-4"]
    assert len(await found(api, "created:>=2026-01-01 updated:<7d")) == 5
    assert await found(api, "created:<2026-01-01") == []
    assert await found(api, "updated:>7d") == []
    assert await found(api, "due:<=2026-12-31") == ["QRY-2"]
    assert await found(api, "due:2027-06-01") == ["QRY-4"]
    assert await found(api, "field.effort:>=3") == ["QRY-2", "QRY-3"]
    assert await found(api, "field.effort:>3") == ["QRY-3"]
    assert await found(api, "field.effort:3") == ["QRY-2"]
    assert await found(api, "-field.effort:3") == ["QRY-1", "QRY-3", "QRY-4", "QRY-5"]
    assert await found(api, "parent:qry-1") == ["QRY-5"]
    assert await found(api, "crash") == ["QRY-1", "QRY-5"]
    assert await found(api, 'crash -"on save"') == ["QRY-5"]
    assert await found(api, '"dark theme" type:feature') == ["QRY-2"]
    # Cross-project: every project the caller can see, or those `project:` names.
    assert await found(api, "crash", project=None) == ["OTH-1", "QRY-1", "QRY-5"]
    assert await found(api, "crash project:oth", project=None) == ["OTH-1"]
    # The query and the other parameters combine; `sort:` orders unless `sort=` does.
    assert await found(api, "label:ui", status=["open"], priority="low") == ["QRY-2"]
    ordered = await tickets_api.client.get(
        "/api/v1/projects/QRY/tickets",
        params={"query": "type:bug sort:priority-asc"},
        headers=api.headers(DEV),
    )
    assert [t["key"] for t in ordered.json()["items"]] == ["QRY-5", "QRY-3", "QRY-1"]


async def test_invalid_queries_are_422_at_the_offending_position(tickets_api: Any) -> None:
    await scene(tickets_api)
    cases = {
        "status:open colour:red": 12,
        'label:ui "unterminated': 9,
        "status:nosuch": 0,
        "assignee:nobody@example.com": 0,
        'milestone:"v9"': 0,
        "parent:QRY-99": 0,
        "priority:>=urgent": 0,
        "(status:open)": 0,
    }
    for query, position in cases.items():
        body = await problem(tickets_api, query)
        assert body["code"] == "invalid_query", body
        assert body["position"] >= position, (query, body)
        assert body["position"] <= len(query), (query, body)
    # project: names a project of the cross-project list only; a project the caller cannot
    # see reads like one that does not exist.
    assert (await problem(tickets_api, "project:QRY"))["code"] == "invalid_query"
    tickets_api.projects.add("SEC", {OWNER: ProjectRole.OWNER})
    secret = await problem(tickets_api, "project:SEC", project=None)
    assert secret["detail"].replace("SEC", "X") == (
        await problem(tickets_api, "project:NOPE", project=None)
    )["detail"].replace("NOPE", "X")


async def test_saved_filters_private_shared_and_run(tickets_api: Any) -> None:
    await scene(tickets_api)
    api = tickets_api
    project_id = str(next(iter(api.projects.projects)))
    private = await post(api, "/api/v1/filters", {"name": "Mine", "query": "assignee:@me"}, DEV)
    shared = await post(
        api,
        "/api/v1/filters",
        {"name": "UI", "query": "label:ui", "project_id": project_id, "shared": True},
        DEV,
    )
    # Its owner sees both; another member only the shared one; a stranger neither.
    listed = await api.client.get("/api/v1/filters", headers=api.headers(DEV))
    assert [f["name"] for f in listed.json()["items"]] == ["Mine", "UI"]
    seen = await api.client.get("/api/v1/filters", headers=api.headers(VIEWER))
    assert [f["name"] for f in seen.json()["items"]] == ["UI"]
    per_project = await api.client.get(
        "/api/v1/filters", params={"project": "QRY"}, headers=api.headers(VIEWER)
    )
    assert [f["name"] for f in per_project.json()["items"]] == ["UI"]
    for who, status in ((VIEWER, 404), (OTHER, 404), (DEV, 200)):
        got = await api.client.get(f"/api/v1/filters/{private['id']}", headers=api.headers(who))
        assert got.status_code == status
    ran = await api.client.get(
        f"/api/v1/filters/{shared['id']}/tickets?limit=1", headers=api.headers(VIEWER)
    )
    assert ran.status_code == 200
    first = ran.json()
    assert len(first["items"]) == 1
    assert first["next_cursor"]
    rest = await api.client.get(
        f"/api/v1/filters/{shared['id']}/tickets",
        params={"limit": "1", "cursor": first["next_cursor"]},
        headers=api.headers(VIEWER),
    )
    assert sorted([first["items"][0]["key"], rest.json()["items"][0]["key"]]) == [
        "QRY-1",
        "QRY-2",
    ]
    mine = await api.client.get(
        f"/api/v1/filters/{private['id']}/tickets", headers=api.headers(DEV)
    )
    assert [t["key"] for t in mine.json()["items"]] == ["QRY-3"]
    # Only the owner changes it; the change is checked as a new filter is.
    denied = await api.client.patch(
        f"/api/v1/filters/{shared['id']}", json={"name": "x"}, headers=api.headers(VIEWER)
    )
    assert denied.status_code == 403
    bad = await api.client.patch(
        f"/api/v1/filters/{shared['id']}", json={"query": "colour:red"}, headers=api.headers(DEV)
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_query"
    renamed = await api.client.patch(
        f"/api/v1/filters/{shared['id']}",
        json={"name": "UI bugs", "query": "label:ui type:bug"},
        headers={**api.headers(DEV), "If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["version"] == 2
    # A member who leaves the project stops seeing the shared filter.
    del api.projects.projects[uuid.UUID(project_id)].members[VIEWER]
    gone = await api.client.get(f"/api/v1/filters/{shared['id']}", headers=api.headers(VIEWER))
    assert gone.status_code == 404
    listed_after = await api.client.get("/api/v1/filters", headers=api.headers(VIEWER))
    assert listed_after.json()["items"] == []
    deleted = await api.client.delete(f"/api/v1/filters/{shared['id']}", headers=api.headers(DEV))
    assert deleted.status_code == 204


async def test_saved_filters_refuse_what_they_cannot_hold(tickets_api: Any) -> None:
    await scene(tickets_api)
    api = tickets_api
    stranger_project = api.projects.add("SEC", {OWNER: ProjectRole.OWNER})
    bodies = [
        ({"name": "x", "query": "colour:red"}, "invalid_query"),
        ({"name": "x", "query": "label:ui", "shared": True}, "validation_error"),
        ({"name": "x", "query": "a", "project_id": str(stranger_project.id)}, "validation_error"),
        ({"name": "x", "query": "a", "extra": 1}, "validation_error"),
        ({"name": "", "query": "a"}, "validation_error"),
    ]
    for body, code in bodies:
        response = await api.client.post("/api/v1/filters", json=body, headers=api.headers(DEV))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == code, (body, response.json())
    listed = await api.client.get("/api/v1/filters", headers=api.headers(DEV))
    assert listed.json()["items"] == []


async def test_export_as_csv_and_ndjson(tickets_api: Any) -> None:
    await scene(tickets_api)
    api = tickets_api
    response = await api.client.get(
        "/api/v1/projects/QRY/tickets",
        params={"query": "-status:done", "sort": "created_at", "limit": "1"},
        headers={**api.headers(VIEWER), "Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-total-count"] == "4"
    assert response.text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    # Every match (no page limit), in the list's order, custom fields as columns.
    assert [row["key"] for row in rows] == ["QRY-1", "QRY-2", "QRY-3", "QRY-5"]
    assert [row["field.effort"] for row in rows] == ["", "3", "8", ""]
    assert rows[1]["labels"] == "ui,wontfix"
    # A cell a spreadsheet would run as a formula is defused.
    assert rows[1]["description"].startswith("'=HYPERLINK")
    ndjson = await api.client.get(
        "/api/v1/tickets",
        params={"query": "crash"},
        headers={**api.headers(DEV), "Accept": "application/x-ndjson"},
    )
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert sorted(t["key"] for t in lines) == ["OTH-1", "QRY-1", "QRY-5"]
    assert {"id", "key", "fields", "labels", "status_category"} <= lines[0].keys()
    # A problem is still JSON, before anything is streamed.
    refused = await api.client.get(
        "/api/v1/projects/QRY/tickets",
        params={"query": "colour:red"},
        headers={**api.headers(DEV), "Accept": "text/csv"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_an_export_too_large_is_refused(
    tickets_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene(tickets_api)
    monkeypatch.setattr(ticket_export, "MAX_EXPORT_ROWS", 3)
    refused = await tickets_api.client.get(
        "/api/v1/projects/QRY/tickets",
        headers={**tickets_api.headers(DEV), "Accept": "application/x-ndjson"},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "export_too_large"
    assert refused.json()["total"] == 5


async def test_an_export_reads_in_pages_without_losing_or_repeating_a_ticket(
    tickets_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene(tickets_api)
    monkeypatch.setattr(ticket_export, "EXPORT_PAGE", 2)
    response = await tickets_api.client.get(
        "/api/v1/projects/QRY/tickets",
        params={"sort": "-priority"},
        headers={**tickets_api.headers(DEV), "Accept": "application/x-ndjson"},
    )
    keys = [json.loads(line)["key"] for line in response.text.splitlines()]
    assert sorted(keys) == ["QRY-1", "QRY-2", "QRY-3", "QRY-4", "QRY-5"]
    assert keys[0] == "QRY-1"  # critical first


async def test_rare_and_common_matches_page_alike(
    tickets_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typed query first checks the newest tickets of the list's order, then asks the
    index that suits it for every match when the page is not full: both ways give the same
    pages, in the list's order."""
    from bugtracker_tickets.infrastructure import repositories

    await scene(tickets_api)

    async def walk(query: str) -> list[str]:
        seen: list[str] = []
        params = {"query": query, "limit": "2"}
        while True:
            page = await tickets_api.client.get(
                "/api/v1/projects/QRY/tickets", params=params, headers=tickets_api.headers(DEV)
            )
            assert page.status_code == 200, page.text
            seen += [t["key"] for t in page.json()["items"]]
            if not page.json()["next_cursor"]:
                return seen
            params["cursor"] = page.json()["next_cursor"]

    queries = ["is:open", "label:ui crash", "-label:wontfix", "priority:>=high", "label:nope"]
    by_window = {query: await walk(query) for query in queries}
    assert sorted(by_window["is:open"]) == ["QRY-1", "QRY-2", "QRY-3", "QRY-5"]
    assert by_window["label:nope"] == []
    monkeypatch.setattr(repositories, "TEXT_SCAN_WINDOW", 1)
    assert {query: await walk(query) for query in queries} == by_window
