"""Each service's migrations create exactly what its table definitions describe."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bugtracker_devstack.stack import REPO_ROOT, SERVICES, Stack
from bugtracker_devstack.testing import migrated

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_table_definitions(infra: Stack, service: str) -> None:
    migrated(infra, service)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "check"],
        cwd=REPO_ROOT / "services" / service,
        env=infra.env(service),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
async def test_each_role_sees_only_its_own_schema(infra: Stack, service: str) -> None:
    import asyncpg

    migrated(infra, service)
    conn = await asyncpg.connect(infra.database_url(service).replace("+asyncpg", ""))
    try:
        for other in SERVICES:
            if other == service:
                continue
            migrated(infra, other)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT 1 FROM {other}.outbox LIMIT 1")  # noqa: S608
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.intruder (id int)")
    finally:
        await conn.close()
