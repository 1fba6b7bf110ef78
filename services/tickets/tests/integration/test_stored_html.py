"""Descriptions and comment bodies are rendered once, on write, and stored (ADR 0025);
rows from before (NULL HTML) are rendered on read until the backfill job stores theirs."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.db import create_engine
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.infrastructure.html_backfill import BATCH, backfill_html

pytestmark = pytest.mark.integration

DEV = uuid.uuid4()
MARKDOWN = "Steps:\n\n1. open *Reports*\n2. `save`\n\n<script>alert(1)</script>"
EXPECTED = (
    "<p>Steps:</p>\n<ol>\n<li>open <em>Reports</em></li>\n<li><code>save</code></li>\n"
    "</ol>\n<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
)


async def test_html_is_stored_on_write_and_served_as_stored(
    tickets_api: Any, superuser_db: asyncpg.Connection
) -> None:
    tickets_api.projects.add("HTML", {DEV: ProjectRole.DEVELOPER})
    created = await tickets_api.create(DEV, "HTML", description=MARKDOWN)
    assert created.json()["description_html"] == EXPECTED
    headers = tickets_api.headers(DEV)
    comment = await tickets_api.client.post(
        "/api/v1/tickets/HTML-1/comments", json={"body": "**bold**"}, headers=headers
    )
    assert comment.status_code == 201, comment.text
    stored = await superuser_db.fetchrow(
        "SELECT t.description_html, c.body_html FROM tickets.tickets t "
        "JOIN tickets.comments c ON c.ticket_id = t.id WHERE t.key = 'HTML-1'"
    )
    assert dict(stored) == {
        "description_html": EXPECTED,
        "body_html": "<p><strong>bold</strong></p>\n",
    }

    # What is stored is what reads serve: they do not render again.
    await superuser_db.execute(
        "UPDATE tickets.tickets SET description_html = '<p>stored</p>' WHERE key = 'HTML-1'"
    )
    read = await tickets_api.client.get("/api/v1/tickets/HTML-1", headers=headers)
    assert read.json()["description_html"] == "<p>stored</p>"

    # A PATCH of the description stores the new HTML; one of another field keeps it.
    version = read.json()["version"]
    patched = await tickets_api.client.patch(
        "/api/v1/tickets/HTML-1",
        json={"description": "_new_"},
        headers=headers | {"If-Match": f'"{version}"'},
    )
    assert patched.json()["description_html"] == "<p><em>new</em></p>\n", patched.text
    patched = await tickets_api.client.patch(
        "/api/v1/tickets/HTML-1",
        json={"title": "other"},
        headers=headers | {"If-Match": f'"{version + 1}"'},
    )
    assert patched.json()["description_html"] == "<p><em>new</em></p>\n", patched.text


async def test_rows_from_before_are_rendered_on_read_and_then_backfilled(
    tickets_api: Any, superuser_db: asyncpg.Connection, infra: Stack
) -> None:
    tickets_api.projects.add("OLD", {DEV: ProjectRole.DEVELOPER})
    count = BATCH + 3  # more than one batch
    for _ in range(3):
        assert (await tickets_api.create(DEV, "OLD", description=MARKDOWN)).status_code == 201
    ticket_id = await superuser_db.fetchval("SELECT id FROM tickets.tickets WHERE key = 'OLD-1'")
    # Rows as they were before migration 0004: no HTML.
    await superuser_db.execute(
        "INSERT INTO tickets.tickets (id, project_id, number, key, title, description, type,"
        " priority, status, status_category, reporter_id, labels, created_at, updated_at, version)"
        " SELECT gen_random_uuid(), project_id, 100 + n, 'OLD-' || (100 + n), title,"
        " description, type, priority, status, status_category, reporter_id, labels, created_at,"
        " updated_at, 1"
        " FROM tickets.tickets, generate_series(1, $1) AS n WHERE key = 'OLD-1'",
        count - 3,
    )
    await superuser_db.execute("UPDATE tickets.tickets SET description_html = NULL")
    await superuser_db.execute(
        "INSERT INTO tickets.comments (id, ticket_id, author_id, body, mentions, created_at,"
        " updated_at, version) VALUES (gen_random_uuid(), $1, $2, '*old*', '{}', now(), now(), 1)",
        ticket_id,
        DEV,
    )

    read = await tickets_api.client.get("/api/v1/tickets/OLD-101", headers=tickets_api.headers(DEV))
    assert read.json()["description_html"] == EXPECTED
    comments = await tickets_api.client.get(
        "/api/v1/tickets/OLD-1/comments", headers=tickets_api.headers(DEV)
    )
    assert comments.json()["items"][0]["body_html"] == "<p><em>old</em></p>\n"

    engine = create_engine(infra.database_url("tickets"), schema="tickets")
    try:
        await backfill_html(engine)
    finally:
        await engine.dispose()
    missing = await superuser_db.fetchval(
        "SELECT count(*) FROM tickets.tickets WHERE description_html IS DISTINCT FROM $1",
        EXPECTED,
    )
    assert missing == 0
    assert await superuser_db.fetchval("SELECT count(*) FROM tickets.tickets") == count
    assert await superuser_db.fetchval("SELECT body_html FROM tickets.comments") == (
        "<p><em>old</em></p>\n"
    )
