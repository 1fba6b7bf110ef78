"""Which failures mean "the database cannot serve this now" (503, retry) and which are a
fault in the request or the code (500)."""

from __future__ import annotations

import asyncpg
import pytest
from bugtracker_shared.db import database_unavailable
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


def _translated(error: Exception) -> Exception:
    """The error as SQLAlchemy's asyncpg adapter raises it: its own class, caused by the
    driver's."""
    try:
        raise AsyncAdapt_asyncpg_dbapi.Error(str(error)) from error  # type: ignore[no-untyped-call]
    except AsyncAdapt_asyncpg_dbapi.Error as translated:
        return translated


def _wrapped(error: Exception, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _translated(error), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        PoolTimeoutError("QueuePool limit reached"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        _translated(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed")),
        _wrapped(RuntimeError("anything"), invalidated=True),
    ],
    ids=repr,
)
def test_a_lost_or_overloaded_database_is_unavailable(error: Exception) -> None:
    assert database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedColumnError("no such column"),
        asyncpg.exceptions.InterfaceError("another operation is in progress"),
        _wrapped(asyncpg.exceptions.CheckViolationError("check")),
        ValueError("not the database"),
    ],
    ids=repr,
)
def test_a_fault_of_the_request_or_the_code_is_not(error: Exception) -> None:
    assert not database_unavailable(error)
