"""Tickets past the restore window are purged with everything that is theirs, and their
attachments' bytes then go with the sweep (docs/adr/0041), on PostgreSQL: a ticket
deleted more than 30 days ago, and every ticket of a project deleted that long ago."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.permissions import ProjectRole
from bugtracker_testkit import TokenMinter, app_client
from bugtracker_tickets.application.attachments import AttachmentUseCases
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.application.milestones import MilestoneUseCases
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.main import create_app
from bugtracker_tickets.settings import AttachmentSettings, Settings

from services.tickets.tests.conftest import PROJECTS_URL, FakeProjects, TicketsApi

pytestmark = pytest.mark.integration

MAINTAINER, DEV = uuid.uuid4(), uuid.uuid4()
ROLES = {MAINTAINER: ProjectRole.MAINTAINER, DEV: ProjectRole.DEVELOPER}
LONG_AGO = timedelta(days=31)


@dataclass
class Scene:
    api: TicketsApi
    tickets: TicketUseCases
    attachments: AttachmentUseCases
    db: asyncpg.Connection
    files: Path

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.client.request(
            method, f"/api/v1{path}", headers=self.api.headers(MAINTAINER), **kwargs
        )

    async def ticket(self, project: str, **body: Any) -> dict[str, Any]:
        response = await self.api.create(DEV, project, **body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def attach(self, ticket: dict[str, Any], content: bytes) -> dict[str, Any]:
        response = await self.call(
            "POST", f"/tickets/{ticket['id']}/attachments", files={"file": ("f.txt", content)}
        )
        assert response.status_code == 201, response.text
        attachment: dict[str, Any] = response.json()
        return attachment

    def blob(self, sha256: str) -> Path:
        return self.files / sha256[:2] / sha256

    async def exists(self, ticket: dict[str, Any]) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM tickets.tickets WHERE id = $1", uuid.UUID(ticket["id"])
        )
        return found is not None


@pytest.fixture
async def scene(
    infra: Stack,
    superuser_db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Scene]:
    """The tickets app with its background jobs idle: each test runs the purge and the
    sweep itself."""

    async def idle(self: object, **_: float) -> None:
        return None

    for cases, job in (
        (TicketUseCases, "keep_purging"),
        (AttachmentUseCases, "keep_sweeping"),
        (ConfigurationUseCases, "keep_purging"),
        (MilestoneUseCases, "keep_clearing"),
    ):
        monkeypatch.setattr(cases, job, idle)
    migrated(infra, "tickets")
    await truncate_schema(infra, "tickets")
    tokens, projects = TokenMinter(), FakeProjects()
    settings = Settings(
        database_url=infra.database_url("tickets"),
        amqp_url=infra.rabbitmq.url,
        projects_url=PROJECTS_URL,
        attachments=AttachmentSettings(dir=tmp_path),
    )
    app = create_app(
        settings,
        projects_transport=httpx.MockTransport(projects.router.handler),
        jwks_fetcher=tokens.fetch_jwks,
    )
    async with app_client(app) as client:
        yield Scene(
            TicketsApi(client, tokens, projects),
            app.state.use_cases,
            app.state.attachment_cases,
            superuser_db,
            tmp_path,
        )


async def test_a_ticket_deleted_longer_ago_than_the_window_is_purged_with_its_files(
    scene: Scene,
) -> None:
    scene.api.projects.add("OLD", ROLES)
    parent = await scene.ticket("OLD", title="deleted long ago")
    child = await scene.ticket("OLD", title="child", parent_id=parent["id"])
    recent = await scene.ticket("OLD", title="deleted yesterday")
    blocked = await scene.ticket("OLD", title="blocked")
    kept = await scene.attach(parent, b"shared bytes")
    await scene.attach(blocked, b"shared bytes")  # the same bytes: one blob, two rows
    only = await scene.attach(parent, b"only the purged ticket has these")
    relation = await scene.call(
        "POST",
        f"/tickets/{parent['id']}/relations",
        json={"type": "blocks", "ticket_id": blocked["id"]},
    )
    assert relation.status_code == 201, relation.text
    await scene.call("POST", f"/tickets/{parent['id']}/comments", json={"body": "old news"})
    for ticket in (parent, recent):
        assert (await scene.call("DELETE", f"/tickets/{ticket['id']}")).status_code == 204
    now = datetime.now(UTC)
    await scene.db.execute(
        "UPDATE tickets.tickets SET deleted_at = $2 WHERE id = $1",
        uuid.UUID(parent["id"]),
        now - LONG_AGO,
    )
    # Past the window a restore is refused, before or after the purge ran.
    refused = await scene.call("POST", f"/tickets/{parent['id']}/restore")
    assert (refused.status_code, refused.json()["code"]) == (409, "restore_expired")

    assert await scene.tickets.purge_expired(now) == 1

    assert not await scene.exists(parent)
    assert await scene.exists(recent)  # within the window: still restorable
    restored = await scene.call("POST", f"/tickets/{recent['id']}/restore")
    assert restored.status_code == 200, restored.text
    left = await scene.db.fetchrow(
        "SELECT parent_id, open_blockers FROM tickets.tickets WHERE id = $1",
        uuid.UUID(child["id"]),
    )
    assert left is not None
    assert left["parent_id"] is None
    for table in ("comments", "history", "watchers", "attachments"):
        count = await scene.db.fetchval(
            f"SELECT count(*) FROM tickets.{table} WHERE ticket_id = $1",  # noqa: S608 (names above)
            uuid.UUID(parent["id"]),
        )
        assert count == 0, table
    assert await scene.db.fetchval("SELECT count(*) FROM tickets.relations") == 0
    # The sweep then removes the bytes no attachment names, and keeps the shared ones.
    later = now + timedelta(hours=2)
    assert await scene.attachments.sweep(later) == 1
    assert not scene.blob(only["sha256"]).exists()
    assert scene.blob(kept["sha256"]).exists()


async def test_the_tickets_of_a_project_deleted_long_ago_are_purged(scene: Scene) -> None:
    scene.api.projects.add("GONE", ROLES)
    scene.api.projects.add("STAY", ROLES)
    milestone = await scene.call("POST", "/projects/GONE/milestones", json={"name": "1.0"})
    assert milestone.status_code == 201, milestone.text
    doomed = await scene.ticket("GONE", milestone_id=milestone.json()["id"])
    other = await scene.ticket("STAY")
    blocks = await scene.call(
        "POST",
        f"/tickets/{doomed['id']}/relations",
        json={"type": "blocks", "ticket_id": other["id"]},
    )
    assert blocks.status_code == 201, blocks.text
    attachment = await scene.attach(doomed, b"bytes of a deleted project")
    project_id = uuid.UUID(doomed["project_id"])
    now = datetime.now(UTC)
    await scene.db.execute(
        "INSERT INTO tickets.project_view (id, key, archived, deleted, version, deleted_at)"
        " VALUES ($1, 'GONE', false, true, 9, $2)"
        " ON CONFLICT (id) DO UPDATE SET deleted = true, deleted_at = $2",
        project_id,
        now - LONG_AGO,
    )
    assert (
        await scene.db.fetchval(
            "SELECT open_blockers FROM tickets.tickets WHERE id = $1", uuid.UUID(other["id"])
        )
        == 1
    )

    assert await scene.tickets.purge_expired(now) == 1

    assert not await scene.exists(doomed)
    assert await scene.exists(other)
    # The live ticket was counted out before it went: nothing blocks `other` any more, and
    # the milestone counts no ticket.
    assert (
        await scene.db.fetchval(
            "SELECT open_blockers FROM tickets.tickets WHERE id = $1", uuid.UUID(other["id"])
        )
        == 0
    )
    progress = await scene.db.fetchrow(
        "SELECT total, done FROM tickets.milestones WHERE id = $1",
        uuid.UUID(milestone.json()["id"]),
    )
    assert progress is not None
    assert (progress["total"], progress["done"]) == (0, 0)
    assert await scene.attachments.sweep(now + timedelta(hours=2)) == 1
    assert not scene.blob(attachment["sha256"]).exists()


async def test_a_project_deleted_recently_keeps_its_tickets(scene: Scene) -> None:
    scene.api.projects.add("RECENT", ROLES)
    ticket = await scene.ticket("RECENT")
    now = datetime.now(UTC)
    await scene.db.execute(
        "INSERT INTO tickets.project_view (id, key, archived, deleted, version, deleted_at)"
        " VALUES ($1, 'RECENT', false, true, 3, $2)",
        uuid.UUID(ticket["project_id"]),
        now - timedelta(days=29),
    )
    assert await scene.tickets.purge_expired(now) == 0
    assert await scene.exists(ticket)
