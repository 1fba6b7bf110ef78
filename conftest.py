"""Fixtures for the whole repository (one pytest run from the root).

The run starts its own PostgreSQL and RabbitMQ as child processes, in a temporary
directory on free ports, and stops them at the end; it never touches `.data/`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import throwaway_stack
from fastapi import FastAPI


@pytest.fixture(scope="session")
def infra() -> Iterator[Stack]:
    with throwaway_stack() as stack:
        yield stack


def app_factories() -> dict[str, Callable[[], FastAPI]]:
    """Each process's app factory, by process name (they read their settings from the
    environment when called)."""
    from bugtracker_auth.main import create_app as auth
    from bugtracker_gateway.main import create_app as gateway
    from bugtracker_notifications.main import create_app as notifications
    from bugtracker_projects.main import create_app as projects
    from bugtracker_tickets.main import create_app as tickets

    return {
        "auth": auth,
        "projects": projects,
        "tickets": tickets,
        "notifications": notifications,
        "gateway": gateway,
    }


@pytest.fixture(name="app_factories")
def app_factories_fixture() -> dict[str, Callable[[], FastAPI]]:
    return app_factories()


@pytest.fixture
async def superuser_db(infra: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        yield conn
    finally:
        await conn.close()
