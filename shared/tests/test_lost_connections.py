"""Once a request finds its connection lost, every older pooled connection is replaced
at its next checkout (bugtracker_shared.db._LostConnections): after a PostgreSQL restart
the other pooled connections may not look closed yet, and each would fail a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.db import connection_lost, create_engine, driver_connection
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration

POOL = 4


async def _backends(engine: AsyncEngine) -> set[int]:
    """The backend pid of each of POOL connections checked out at once."""
    held = asyncio.Event()
    pids: list[int] = []

    async def one() -> None:
        async with driver_connection(engine) as conn:
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
            if len(pids) == POOL:
                held.set()
            await held.wait()

    await asyncio.gather(*(one() for _ in range(POOL)))
    return set(pids)


@pytest.fixture
async def engine(infra: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(infra.database_url("tickets"), schema="tickets", pool_size=POOL)
    yield engine
    await engine.dispose()


async def test_a_lost_connection_retires_every_older_pooled_one(engine: AsyncEngine) -> None:
    before = await _backends(engine)
    assert await _backends(engine) == before  # pooled: the same backends again

    lost = asyncpg.exceptions.AdminShutdownError("terminating connection")
    assert connection_lost(engine, lost)

    after = await _backends(engine)
    assert after.isdisjoint(before)
    assert await _backends(engine) == after  # the new ones are pooled in turn


async def test_a_cancelled_statement_keeps_the_pool(engine: AsyncEngine) -> None:
    before = await _backends(engine)
    cancelled = asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")
    assert not connection_lost(engine, cancelled)
    assert await _backends(engine) == before


async def test_a_transaction_left_open_on_the_driver_connection_never_goes_back_to_the_pool(
    engine: AsyncEngine,
) -> None:
    """A driver-level transaction that its block leaves open (a handler cancelled between
    its statements and its rollback) would hold its locks on a pooled connection for
    ever, and every later user of that connection would work inside it: the connection
    is closed instead (the server rolls the transaction back)."""
    async with driver_connection(engine) as conn:
        left_open = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1")
    pids: list[int] = []

    async def fail_inside_a_transaction() -> None:
        async with driver_connection(engine) as conn:
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
            await conn.execute("BEGIN")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside_a_transaction()
    failed_open = pids[0]
    for pid in await _backends(engine):
        assert pid not in (left_open, failed_open)
    async with driver_connection(engine) as conn:
        assert not conn.is_in_transaction()
