from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from bugtracker_devstack.processes import free_port
from bugtracker_shared.permissions import ProjectRole
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

OWNER, DEV, REPORTER, VIEWER, STRANGER = (uuid.uuid4() for _ in range(5))
ROLES = {
    OWNER: ProjectRole.OWNER,
    DEV: ProjectRole.DEVELOPER,
    REPORTER: ProjectRole.REPORTER,
    VIEWER: ProjectRole.VIEWER,
}


async def test_tickets_get_sequential_keys_and_can_be_read_by_id_or_key(tickets_api: Any) -> None:
    project = tickets_api.projects.add("BUG", ROLES)
    first = await tickets_api.create(REPORTER, "BUG", description="**bold** <script>x</script>")
    second = await tickets_api.create(REPORTER, str(project.id), priority="high")
    assert first.status_code == 201, first.text
    assert [first.json()["key"], second.json()["key"]] == ["BUG-1", "BUG-2"]
    assert first.headers["location"] == f"/api/v1/tickets/{first.json()['id']}"
    html = first.json()["description_html"]
    assert "<strong>bold</strong>" in html
    assert "<script>" not in html
    for ref in (first.json()["id"], "BUG-1", "bug-1"):
        got = await tickets_api.client.get(
            f"/api/v1/tickets/{ref}", headers=tickets_api.headers(VIEWER)
        )
        assert got.status_code == 200
        assert got.json()["key"] == "BUG-1"
        assert got.headers["etag"] == '"1"'


async def test_concurrent_creates_get_distinct_gapless_numbers(tickets_api: Any) -> None:
    tickets_api.projects.add("RACE", ROLES)
    responses = await asyncio.gather(*(tickets_api.create(DEV, "RACE") for _ in range(20)))
    assert all(r.status_code == 201 for r in responses)
    numbers = sorted(int(r.json()["key"].split("-")[1]) for r in responses)
    assert numbers == list(range(1, 21))


async def test_outsiders_get_404_and_viewers_may_not_create(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BUG")).json()
    for path in (
        f"/api/v1/tickets/{ticket['id']}",
        "/api/v1/tickets/BUG-1",
        "/api/v1/projects/BUG/tickets",
    ):
        response = await tickets_api.client.get(path, headers=tickets_api.headers(STRANGER))
        assert response.status_code == 404, path
    stranger = await tickets_api.create(STRANGER, "BUG")
    assert stranger.status_code == 404
    viewer = await tickets_api.create(VIEWER, "BUG")
    assert viewer.status_code == 403
    assert viewer.json()["code"] == "forbidden"
    missing = await tickets_api.client.get(
        "/api/v1/tickets/BUG-99", headers=tickets_api.headers(OWNER)
    )
    assert missing.status_code == 404
    weird = await tickets_api.client.get(
        "/api/v1/projects/..%2F..%2Fusers/tickets", headers=tickets_api.headers(OWNER)
    )
    assert weird.status_code == 404


async def test_archived_projects_are_read_only(tickets_api: Any) -> None:
    project = tickets_api.projects.add("OLD", ROLES)
    ticket = (await tickets_api.create(DEV, "OLD")).json()
    project.archived = True
    create = await tickets_api.create(DEV, "OLD")
    assert create.status_code == 409
    assert create.json()["code"] == "project_archived"
    assign = await tickets_api.client.put(
        f"/api/v1/tickets/{ticket['id']}/assignee",
        json={"assignee_id": str(DEV)},
        headers=tickets_api.headers(DEV),
    )
    assert assign.status_code == 409


async def test_assignment_checks_membership_and_writes_an_event(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    ticket = (await tickets_api.create(REPORTER, "BUG")).json()
    url = f"/api/v1/tickets/{ticket['id']}/assignee"

    outsider = await tickets_api.client.put(
        url, json={"assignee_id": str(STRANGER)}, headers=tickets_api.headers(DEV)
    )
    assert outsider.status_code == 422
    assert outsider.json()["code"] == "assignee_not_member"
    by_reporter = await tickets_api.client.put(
        url, json={"assignee_id": str(DEV)}, headers=tickets_api.headers(REPORTER)
    )
    assert by_reporter.status_code == 403

    assigned = await tickets_api.client.put(
        url, json={"assignee_id": str(VIEWER)}, headers=tickets_api.headers(DEV)
    )
    assert assigned.status_code == 200
    assert assigned.json()["assignee_id"] == str(VIEWER)
    assert assigned.json()["version"] == 2
    assert assigned.headers["etag"] == '"2"'

    rows = await superuser_db.fetch(
        "SELECT routing_key, payload FROM tickets.outbox WHERE aggregate_id = $1 ORDER BY position",
        ticket["id"],
    )
    assert [r["routing_key"] for r in rows] == ["ticket.created", "ticket.assigned"]
    event = json.loads(rows[1]["payload"])
    assert event["type"] == "io.bugtracker.ticket.assigned.v1"
    assert event["actorid"] == str(DEV)
    assert event["sequence"] == 2
    assert event["data"]["changes"] == {"assignee_id": {"from": None, "to": str(VIEWER)}}

    unassigned = await tickets_api.client.put(
        url, json={"assignee_id": None}, headers=tickets_api.headers(DEV)
    )
    assert unassigned.json()["assignee_id"] is None


async def test_list_pages_newest_first_with_filters(tickets_api: Any) -> None:
    tickets_api.projects.add("BUG", ROLES)
    created = [(await tickets_api.create(DEV, "BUG", title=f"t{i}")).json() for i in range(5)]
    await tickets_api.client.put(
        f"/api/v1/tickets/{created[0]['id']}/assignee",
        json={"assignee_id": str(DEV)},
        headers=tickets_api.headers(DEV),
    )
    keys: list[str] = []
    url: str | None = "/api/v1/projects/BUG/tickets?limit=2"
    while url:
        page = await tickets_api.client.get(url, headers=tickets_api.headers(VIEWER))
        assert page.status_code == 200
        keys += [t["key"] for t in page.json()["items"]]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert keys == ["BUG-1", "BUG-5", "BUG-4", "BUG-3", "BUG-2"]

    mine = await tickets_api.client.get(
        "/api/v1/projects/BUG/tickets?assignee=me&status=open", headers=tickets_api.headers(DEV)
    )
    assert [t["key"] for t in mine.json()["items"]] == ["BUG-1"]
    nobody = await tickets_api.client.get(
        "/api/v1/projects/BUG/tickets?assignee=none", headers=tickets_api.headers(DEV)
    )
    assert len(nobody.json()["items"]) == 4
    for query in ("status=bogus", "assignee=someone", "limit=0", "limit=101", "cursor=xyz"):
        bad = await tickets_api.client.get(
            f"/api/v1/projects/BUG/tickets?{query}", headers=tickets_api.headers(DEV)
        )
        assert bad.status_code == 422, query


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"title": ', 400),
        (b'{"title": ""}', 422),
        (b'{"title": "x", "colour": "red"}', 422),
        (b'{"title": "x", "priority": "urgent"}', 422),
        (b'{"title": "x", "labels": "not-a-list"}', 422),
        (b'{"title": "' + b"x" * 201 + b'"}', 422),
    ],
)
async def test_bad_bodies_are_problems_and_create_nothing(
    tickets_api: Any, content: bytes, status: int
) -> None:
    tickets_api.projects.add("BUG", ROLES)
    response = await tickets_api.client.post(
        "/api/v1/projects/BUG/tickets",
        content=content,
        headers=tickets_api.headers(DEV) | {"content-type": "application/json"},
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    listed = await tickets_api.client.get(
        "/api/v1/projects/BUG/tickets", headers=tickets_api.headers(DEV)
    )
    assert listed.json()["items"] == []


async def test_metrics_report_the_pool_and_the_backlog_the_broker_has_not_taken_yet(
    open_tickets_api: Any,
) -> None:
    # Nobody listens at that broker address: the events wait in the outbox.
    broker_down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    async with open_tickets_api(amqp_url=broker_down, db_pool_size=4) as api:
        api.projects.add("MET", ROLES)
        for _ in range(3):
            assert (await api.create(REPORTER, "MET")).status_code == 201
        scraped = await api.client.get("/metrics")
    assert scraped.status_code == 200
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    assert values[("bugtracker_db_pool_size", ())] == 4
    assert values[("bugtracker_db_pool_connections", (("state", "in_use"),))] == 0
    assert values[("bugtracker_outbox_backlog", ())] == 3  # one ticket.created each
    assert values[("bugtracker_outbox_oldest_unsent_age_seconds", ())] > 0
    created = (
        "bugtracker_http_request_duration_seconds_count",
        (
            ("method", "POST"),
            ("route", "/api/v1/projects/{project_ref}/tickets"),
            ("status", "201"),
        ),
    )
    assert values[created] >= 3
