"""`make seed` writes tickets the way the services would: gapless keys, the counter moved
on, a project and an owner the other services see."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from bugtracker_devstack.seed import seed
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated
from bugtracker_tickets.application.markdown import render

pytestmark = pytest.mark.integration


async def test_seeding_twice_continues_the_numbering(
    infra: Stack, superuser_db: asyncpg.Connection
) -> None:
    for service in ("auth", "projects", "tickets"):
        migrated(infra, service)
    owner = uuid.uuid4()
    email = f"seed-{owner.hex[:8]}@example.com"
    now = datetime.now(UTC)
    await superuser_db.execute(
        "INSERT INTO auth.users (id, email, display_name, password_hash, role, is_active, "
        "created_at, updated_at, version) VALUES ($1, $2, 'Seeder', 'x', 'admin', true, $3, $3, 1)",
        owner,
        email,
        now,
    )
    dsn = infra.postgres.superuser_dsn("bugtracker")
    key = "SD" + owner.hex[:6].upper()
    try:
        await seed(dsn, key=key, tickets=120, owner_email=email, batch=50)
        await seed(dsn, key=key, tickets=30, owner_email=email, batch=50)
        project_id = await superuser_db.fetchval(
            "SELECT id FROM projects.projects WHERE key = $1", key
        )
        role = await superuser_db.fetchval(
            "SELECT role FROM projects.memberships WHERE project_id = $1 AND user_id = $2",
            project_id,
            owner,
        )
        assert role == "owner"
        numbers = await superuser_db.fetch(
            "SELECT number, key FROM tickets.tickets WHERE project_id = $1 ORDER BY number",
            project_id,
        )
        assert [row["number"] for row in numbers] == list(range(1, 151))
        assert all(row["key"] == f"{key}-{row['number']}" for row in numbers)
        counter = await superuser_db.fetchval(
            "SELECT last_number FROM tickets.project_counters WHERE project_id = $1", project_id
        )
        assert counter == 150
        # The HTML is stored as the tickets service would render it.
        texts = await superuser_db.fetch(
            "SELECT description, description_html FROM tickets.tickets WHERE project_id = $1",
            project_id,
        )
        assert all(row["description_html"] == render(row["description"]) for row in texts)
        # `open_blockers` is counted after the load as the triggers would have kept it.
        blockers = await superuser_db.fetch(
            "SELECT t.open_blockers, (SELECT count(*) FROM tickets.relations r"
            " JOIN tickets.tickets s ON s.id = r.source_id WHERE r.target_id = t.id"
            " AND r.type = 'blocks' AND s.deleted_at IS NULL"
            " AND s.status NOT IN ('done', 'closed')) AS counted"
            " FROM tickets.tickets t WHERE t.project_id = $1",
            project_id,
        )
        assert all(row["open_blockers"] == row["counted"] for row in blockers)
        assert any(row["open_blockers"] > 0 for row in blockers)
    finally:
        await superuser_db.execute("DELETE FROM tickets.tickets WHERE key LIKE $1", f"{key}-%")
        await superuser_db.execute(
            "DELETE FROM tickets.project_counters WHERE project_id = "
            "(SELECT id FROM projects.projects WHERE key = $1)",
            key,
        )
        await superuser_db.execute("DELETE FROM projects.projects WHERE key = $1", key)
        await superuser_db.execute("DELETE FROM auth.users WHERE id = $1", owner)


async def test_seeding_needs_an_existing_owner(infra: Stack) -> None:
    for service in ("auth", "projects", "tickets"):
        migrated(infra, service)
    with pytest.raises(SystemExit):
        await seed(
            infra.postgres.superuser_dsn("bugtracker"),
            key="NOPE",
            tickets=1,
            owner_email="nobody@example.com",
        )
