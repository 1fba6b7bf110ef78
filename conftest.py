"""Fixtures for the whole repository (one pytest run from the root).

The run starts its own PostgreSQL, RabbitMQ and Redis as child processes, in a temporary
directory on free ports, and stops them at the end; it never touches `.data/`. The e2e
system runs every process twice (`BUGTRACKER_TEST_REPLICAS`, default 2): what holds with
one replica must hold with several.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import throwaway_stack
from fastapi import FastAPI

# Apps built in the test run keep attachments' bytes in a directory of the run's own: the
# attachment sweep removes every blob its database does not name, so it must never see
# the bytes of `make up` (.data/attachments) or of anything else.
os.environ["BUGTRACKER_ATTACHMENTS_DIR"] = tempfile.mkdtemp(prefix="bugtracker-test-attachments-")


@pytest.fixture(scope="session")
def infra() -> Iterator[Stack]:
    with throwaway_stack(replicas=int(os.environ.get("BUGTRACKER_TEST_REPLICAS", "2"))) as stack:
        yield stack


def app_factories() -> dict[str, Callable[[], FastAPI]]:
    """Each process's app factory, by process name (they read their settings from the
    environment when called)."""
    from bugtracker_auth.main import create_app as auth
    from bugtracker_gateway.main import create_app as gateway
    from bugtracker_notifications.main import create_app as notifications
    from bugtracker_projects.main import create_app as projects
    from bugtracker_tickets.main import create_app as tickets
    from bugtracker_webhooks.main import create_app as webhooks

    return {
        "auth": auth,
        "projects": projects,
        "tickets": tickets,
        "notifications": notifications,
        "webhooks": webhooks,
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


# docs/api.md, the public contract. Its table of every operation sits between these two
# marker lines: the header, then one row per operation, nothing else.
API_DOC = Path(__file__).resolve().parent / "docs" / "api.md"
OPERATIONS_BEGIN = "<!-- operations table: begin -->"
OPERATIONS_END = "<!-- operations table: end -->"
OPERATIONS_HEADER = ("| operation | who | what |", "|---|---|---|")
_OPERATION_ROW = re.compile(
    r"\| `(?P<method>GET|POST|PUT|PATCH|DELETE) (?P<path>/[^`\s|]*)` "
    r"\| (?P<who>[^|`]*[^|`\s]) \| [^|]*[^|\s] \|"
)


@dataclass(frozen=True)
class DocumentedOperation:
    """One row of docs/api.md's operations table."""

    method: str  # upper case, as the table writes it
    path: str  # with its parameters named as in the OpenAPI document
    who: str  # `anyone` for the operations that need no access token


def parse_operations_table(text: str) -> list[DocumentedOperation]:
    """The operations table of `text` (docs/api.md), strictly: the markers once each, the
    header, then rows only, each operation once. Anything else is a ValueError."""
    lines = text.splitlines()
    for marker in (OPERATIONS_BEGIN, OPERATIONS_END):
        if lines.count(marker) != 1:
            raise ValueError(f"{marker!r} must be on a line of its own exactly once")
    begin, end = lines.index(OPERATIONS_BEGIN), lines.index(OPERATIONS_END)
    if tuple(lines[begin + 1 : begin + 3]) != OPERATIONS_HEADER:
        raise ValueError(f"the operations table must start with {OPERATIONS_HEADER}")
    operations: list[DocumentedOperation] = []
    for number, line in enumerate(lines[begin + 3 : end], start=begin + 4):
        row = _OPERATION_ROW.fullmatch(line)
        if row is None:
            raise ValueError(f"line {number} is not a row of the operations table: {line!r}")
        operation = DocumentedOperation(row["method"], row["path"], row["who"])
        if any((o.method, o.path) == (operation.method, operation.path) for o in operations):
            raise ValueError(f"line {number} repeats {operation.method} {operation.path}")
        operations.append(operation)
    if not operations:
        raise ValueError("the operations table has no rows")
    return operations


@pytest.fixture(name="parse_operations_table")
def parse_operations_table_fixture() -> Callable[[str], list[DocumentedOperation]]:
    return parse_operations_table


@pytest.fixture(name="documented_operations")
def documented_operations_fixture() -> list[DocumentedOperation]:
    """Every operation docs/api.md lists, from its operations table."""
    return parse_operations_table(API_DOC.read_text(encoding="utf-8"))
