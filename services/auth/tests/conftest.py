from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from bugtracker_auth.main import create_app
from bugtracker_auth.settings import Settings
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, truncate_schema
from bugtracker_shared.testing import app_client


@pytest.fixture
async def auth_client(infra: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    migrated(infra, "auth")
    await truncate_schema(infra, "auth")
    settings = Settings(
        database_url=infra.database_url("auth"),
        amqp_url=infra.rabbitmq.url,
        keys_dir=tmp_path / "keys",
    )
    async with app_client(create_app(settings)) as client:
        yield client
