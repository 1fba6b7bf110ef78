from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from bugtracker_shared.permissions import ProjectRole

pytestmark = pytest.mark.integration

OWNER, DEV, REPORTER, VIEWER, MAINTAINER, OTHER = (uuid.uuid4() for _ in range(6))
ROLES = {
    OWNER: ProjectRole.OWNER,
    MAINTAINER: ProjectRole.MAINTAINER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


async def keys(api: Any, query: str, who: uuid.UUID = VIEWER, project: str = "LST") -> list[str]:
    response = await api.client.get(
        f"/api/v1/projects/{project}/tickets?{query}", headers=api.headers(who)
    )
    assert response.status_code == 200, response.text
    return [t["key"] for t in response.json()["items"]]


async def test_fifty_concurrent_creates_get_keys_one_to_fifty(tickets_api: Any) -> None:
    tickets_api.projects.add("RACE", ROLES)
    responses = await asyncio.gather(*(tickets_api.create(DEV, "RACE") for _ in range(50)))
    assert all(r.status_code == 201 for r in responses)
    assert sorted(int(r.json()["key"].split("-")[1]) for r in responses) == list(range(1, 51))


async def test_each_filter_and_sort(tickets_api: Any) -> None:
    project = tickets_api.projects.add("LST", ROLES)
    project.names[DEV] = "Dave"
    specs = [
        {
            "title": "crash on login",
            "priority": "low",
            "type": "bug",
            "labels": ["auth"],
            "due_date": "2027-03-01",
        },
        {
            "title": "dark mode",
            "priority": "critical",
            "type": "feature",
            "labels": ["ui"],
            "description": "users want a crash-free dark theme",
        },
        {
            "title": "speed up search",
            "priority": "high",
            "type": "improvement",
            "labels": ["ui", "perf"],
            "due_date": "2027-01-15",
        },
        {"title": "write docs", "priority": "medium", "type": "task"},
    ]
    created = [(await tickets_api.create(REPORTER, "LST", **spec)).json() for spec in specs]
    await tickets_api.client.put(
        f"/api/v1/tickets/{created[2]['id']}/assignee",
        json={"assignee_id": str(DEV)},
        headers=tickets_api.headers(DEV),
    )
    moved = await tickets_api.client.post(
        f"/api/v1/tickets/{created[3]['id']}/transitions",
        json={"to": "in_progress"},
        headers=tickets_api.headers(DEV),
    )
    marker = moved.json()["updated_at"]

    assert await keys(tickets_api, "") == ["LST-4", "LST-3", "LST-2", "LST-1"]
    assert await keys(tickets_api, "sort=created_at") == ["LST-1", "LST-2", "LST-3", "LST-4"]
    assert await keys(tickets_api, "sort=-priority") == ["LST-2", "LST-3", "LST-4", "LST-1"]
    assert await keys(tickets_api, "sort=priority") == ["LST-1", "LST-4", "LST-3", "LST-2"]
    by_due = await keys(tickets_api, "sort=due_date")
    assert by_due[:2] == ["LST-3", "LST-1"]  # then the ones without a due date
    assert set(by_due[2:]) == {"LST-2", "LST-4"}
    assert await keys(tickets_api, "status=in_progress") == ["LST-4"]
    assert await keys(tickets_api, "status=open&status=in_progress&type=task") == ["LST-4"]
    assert await keys(tickets_api, "priority=high&priority=critical&sort=created_at") == [
        "LST-2",
        "LST-3",
    ]
    assert await keys(tickets_api, "type=bug") == ["LST-1"]
    assert await keys(tickets_api, "assignee=me", who=DEV) == ["LST-3"]
    assert await keys(tickets_api, f"assignee={DEV}") == ["LST-3"]
    assert len(await keys(tickets_api, "assignee=none")) == 3
    assert len(await keys(tickets_api, f"reporter={REPORTER}")) == 4
    assert await keys(tickets_api, f"reporter={DEV}") == []
    assert await keys(tickets_api, "label=ui&sort=created_at") == ["LST-2", "LST-3"]
    assert await keys(tickets_api, "label=ui&label=perf") == ["LST-3"]
    assert await keys(tickets_api, "due_before=2027-02-01") == ["LST-3"]
    assert await keys(tickets_api, f"updated_since={marker.replace('+', '%2B')}") == ["LST-4"]
    # Full text over title and description, newest change first like any list; by
    # relevance on request, where a title match outranks a description match.
    assert sorted(await keys(tickets_api, "q=crash")) == ["LST-1", "LST-2"]
    assert await keys(tickets_api, "q=crash&sort=relevance") == ["LST-1", "LST-2"]
    assert await keys(tickets_api, "q=crash&sort=created_at") == ["LST-1", "LST-2"]
    assert await keys(tickets_api, "q=nothing-like-this") == []
    total = await tickets_api.client.get(
        "/api/v1/projects/LST/tickets?include_total=true&limit=1", headers=tickets_api.headers(DEV)
    )
    assert total.json()["total"] == 4
    assert len(total.json()["items"]) == 1

    mine = await tickets_api.client.get(
        "/api/v1/tickets?assignee=me&status=open", headers=tickets_api.headers(DEV)
    )
    assert [t["key"] for t in mine.json()["items"]] == ["LST-3"]
    stranger = await tickets_api.client.get("/api/v1/tickets", headers=tickets_api.headers(OTHER))
    assert stranger.json() == {"items": [], "next_cursor": None}
    plain = await tickets_api.client.get(
        "/api/v1/projects/LST/tickets?limit=1", headers=tickets_api.headers(DEV)
    )
    assert "total" not in plain.json()
    assert plain.json()["next_cursor"] is not None


@pytest.mark.parametrize("sort", ["-updated_at", "created_at", "-priority", "due_date"])
async def test_paging_has_no_gaps_or_duplicates_while_rows_are_inserted(
    tickets_api: Any, sort: str
) -> None:
    tickets_api.projects.add("PG", ROLES)
    priorities = ["low", "medium", "high", "critical"]
    for i in range(12):
        await tickets_api.create(
            DEV, "PG", priority=priorities[i % 4], due_date=f"2027-01-{i % 5 + 10}"
        )
    before = set(await keys(tickets_api, f"sort={sort}&limit=100", project="PG"))
    seen: list[str] = []
    url: str | None = f"/api/v1/projects/PG/tickets?sort={sort}&limit=5"
    inserted = 0
    while url:
        page = await tickets_api.client.get(url, headers=tickets_api.headers(DEV))
        seen += [t["key"] for t in page.json()["items"]]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        if inserted < 3:  # new rows arrive between pages
            await tickets_api.create(DEV, "PG", priority="medium")
            inserted += 1
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_an_idempotency_key_creates_once(tickets_api: Any) -> None:
    tickets_api.projects.add("IDEM", ROLES)
    headers = tickets_api.headers(DEV) | {"Idempotency-Key": "create-42"}
    url = "/api/v1/projects/IDEM/tickets"
    first = await tickets_api.client.post(url, json={"title": "once"}, headers=headers)
    again = await tickets_api.client.post(url, json={"title": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    different = await tickets_api.client.post(url, json={"title": "twice"}, headers=headers)
    assert different.status_code == 422
    assert different.json()["code"] == "idempotency_key_reused"
    racing = await asyncio.gather(
        *(
            tickets_api.client.post(
                url,
                json={"title": "race"},
                headers=tickets_api.headers(DEV) | {"Idempotency-Key": "race-1"},
            )
            for _ in range(5)
        )
    )
    assert {r.json()["id"] for r in racing} == {racing[0].json()["id"]}
    assert len(await keys(tickets_api, "limit=100", project="IDEM")) == 2


async def test_comments_mentions_edit_and_delete_rules(tickets_api: Any) -> None:
    project = tickets_api.projects.add("CMT", ROLES)
    project.names[DEV] = "Dave Smith"
    ticket = (await tickets_api.create(REPORTER, "CMT")).json()
    url = f"/api/v1/tickets/{ticket['id']}/comments"
    created = await tickets_api.client.post(
        url,
        json={
            "body": "@dave-smith look <script>alert(1)</script> [x](javascript:alert(1)) "
            f"@nobody @{str(OTHER)[:8]}@example.com"
        },
        headers=tickets_api.headers(VIEWER) | {"Idempotency-Key": "c-1"},
    )
    assert created.status_code == 201, created.text
    comment = created.json()
    assert comment["mentions"] == [str(DEV)]
    assert "<script>" not in comment["body_html"]
    assert "javascript:" not in comment["body_html"].replace("[x](javascript:alert(1))", "")
    assert created.headers["etag"] == '"1"'
    replay = await tickets_api.client.post(
        url,
        json={"body": comment["body"]},
        headers=tickets_api.headers(VIEWER) | {"Idempotency-Key": "c-1"},
    )
    assert replay.json()["id"] == comment["id"]

    one = f"{url}/{comment['id']}"
    not_author = await tickets_api.client.patch(
        one, json={"body": "hijack"}, headers=tickets_api.headers(OWNER)
    )
    assert not_author.status_code == 403
    edited = await tickets_api.client.patch(
        one, json={"body": "edited"}, headers=tickets_api.headers(VIEWER) | {"If-Match": '"1"'}
    )
    assert edited.status_code == 200
    assert edited.json()["body"] == "edited"
    stale = await tickets_api.client.patch(
        one, json={"body": "x"}, headers=tickets_api.headers(VIEWER) | {"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    by_dev = await tickets_api.client.delete(one, headers=tickets_api.headers(DEV))
    assert by_dev.status_code == 403
    by_maintainer = await tickets_api.client.delete(one, headers=tickets_api.headers(MAINTAINER))
    assert by_maintainer.status_code == 204
    listed = await tickets_api.client.get(url, headers=tickets_api.headers(VIEWER))
    assert listed.json()["items"] == []

    watchers = await tickets_api.client.get(
        f"/api/v1/tickets/{ticket['id']}/watchers", headers=tickets_api.headers(VIEWER)
    )
    assert set(watchers.json()["items"]) == {str(REPORTER), str(VIEWER)}
    await tickets_api.client.put(
        f"/api/v1/tickets/{ticket['id']}/watchers/me", headers=tickets_api.headers(OWNER)
    )
    await tickets_api.client.delete(
        f"/api/v1/tickets/{ticket['id']}/watchers/me", headers=tickets_api.headers(VIEWER)
    )
    watchers = await tickets_api.client.get(
        f"/api/v1/tickets/{ticket['id']}/watchers", headers=tickets_api.headers(VIEWER)
    )
    assert set(watchers.json()["items"]) == {str(REPORTER), str(OWNER)}


async def test_text_search_pages_alike_whether_matches_are_common_or_rare(
    tickets_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text search first checks the newest tickets of the list's order, then asks the
    full-text index for every match when the page is not full: both ways give the same
    pages, in the list's order."""
    from bugtracker_tickets.infrastructure import repositories

    tickets_api.projects.add("TXT", ROLES)
    for n in range(8):
        words = "common crash" if n % 2 else "common"
        created = await tickets_api.create(DEV, "TXT", title=f"{words} {n}")
        assert created.status_code == 201
    everything = await keys(tickets_api, "q=common&limit=50", project="TXT")
    assert everything == [f"TXT-{n}" for n in range(8, 0, -1)]  # newest change first

    async def walk(query: str) -> list[str]:
        seen: list[str] = []
        path = f"/api/v1/projects/TXT/tickets?{query}&limit=3"
        while path:
            page = await tickets_api.client.get(path, headers=tickets_api.headers(VIEWER))
            assert page.status_code == 200, page.text
            seen += [t["key"] for t in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            path = f"/api/v1/projects/TXT/tickets?{query}&limit=3&cursor={cursor}" if cursor else ""
        return seen

    crash = ["TXT-8", "TXT-6", "TXT-4", "TXT-2"]
    assert await walk("q=crash") == crash
    assert await walk("q=common") == everything
    # A window too small for a page: the index path must give exactly the same pages.
    monkeypatch.setattr(repositories, "TEXT_SCAN_WINDOW", 2)
    assert await walk("q=crash") == crash
    assert await walk("q=common") == everything
    assert await walk("q=absent-word") == []
