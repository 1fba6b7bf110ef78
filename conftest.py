"""Fixtures for the whole repository (one pytest run from the root).

The run starts its own PostgreSQL and RabbitMQ as child processes, in a temporary
directory on free ports, and stops them at the end; it never touches `.data/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import throwaway_stack


@pytest.fixture(scope="session")
def infra() -> Iterator[Stack]:
    with throwaway_stack() as stack:
        yield stack


@pytest.fixture
async def superuser_db(infra: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        yield conn
    finally:
        await conn.close()
