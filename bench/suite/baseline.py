"""Sets up and runs bench/baseline_app.py: its own database and role on `make up`'s
PostgreSQL (made with the superuser, over the private unix socket), 10,000 rows, and one
uvicorn worker on a free port for the duration of the baseline scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import psutil
from baseline_app import PROJECT_ID

from suite.config import BENCH_DIR, Environment

DATABASE = "bench_baseline"
ROLE = "bench_baseline"
ROWS = 10_000
POOL_SIZE = 10  # as each service's SQLAlchemy pool (shared/db.py: 10, overflow 10)
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id uuid PRIMARY KEY,
    key text NOT NULL UNIQUE,
    project_id uuid NOT NULL,
    title text NOT NULL,
    description text NOT NULL,
    status text NOT NULL,
    priority text NOT NULL,
    labels text[] NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS items_project_updated ON items (project_id, updated_at DESC, id DESC);
CREATE SEQUENCE IF NOT EXISTS item_numbers;
"""
FILL = """
INSERT INTO items
SELECT gen_random_uuid(), 'B-' || nextval('item_numbers'), $1, 'Seeded item ' || n,
       repeat('crash login save export ', 8), 'open', 'medium', ARRAY['api'],
       now() - n * interval '1 minute', now() - n * interval '1 minute'
FROM generate_series(1, $2) AS n
"""


@dataclass(frozen=True)
class Baseline:
    url: str
    process: psutil.Process
    rows: int


async def _prepare_database(env: Environment) -> str:
    """Role (new password each run) and database, table and rows; the app's DSN."""
    password = secrets.token_urlsafe(24)
    conn = await asyncpg.connect(env.superuser_dsn("postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE)
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(f"{verb} ROLE {ROLE} LOGIN PASSWORD '{password}'")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    finally:
        await conn.close()
    dsn = f"postgresql://{ROLE}:{password}@127.0.0.1:{env.ports['postgres']}/{DATABASE}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        have = await conn.fetchval("SELECT count(*) FROM items")
        if have < ROWS:
            await conn.execute(FILL, PROJECT_ID, ROWS - have)
            await conn.execute("ANALYZE items")
    finally:
        await conn.close()
    return dsn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(url: str, child: asyncio.subprocess.Process, within: float = 30) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(within * 10)):
            if child.returncode is not None:
                raise RuntimeError("the baseline app exited at start")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/items?limit=1") as response:
                    if response.status == 200:  # noqa: PLR2004
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the baseline app did not answer within {within:.0f} s")


@contextlib.asynccontextmanager
async def running_baseline(env: Environment) -> AsyncIterator[Baseline]:
    dsn = await _prepare_database(env)
    port = _free_port()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "baseline_app:create_app",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
        env={**os.environ, "BENCH_BASELINE_DSN": dsn, "BENCH_BASELINE_POOL": str(POOL_SIZE)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url, child)
        yield Baseline(url=url, process=psutil.Process(child.pid), rows=ROWS)
    finally:
        if child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()
