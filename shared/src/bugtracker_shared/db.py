"""Database helpers: engines and the unit of work that owns every transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Protocol, Self
from weakref import WeakKeyDictionary

import asyncpg
from sqlalchemy import Engine, event, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

# Every wait on the database ends well before the gateway's 10 s deadline, so a request
# that cannot be served answers 503 `database_unavailable` itself (problems.py).
POOL_TIMEOUT_SECONDS = 5.0  # waiting for a pooled connection
CONNECT_TIMEOUT_SECONDS = 3.0  # opening a new one
STATEMENT_TIMEOUT_MS = 8_000  # one statement, enforced by PostgreSQL


def create_engine(url: str, *, schema: str, pool_size: int = 20) -> AsyncEngine:
    """An asyncpg engine whose connections see only the service's own schema.

    A fixed pool, no overflow: overflow connections are closed as soon as they are
    returned while the pool is full, so under steady load each request past `pool_size`
    paid for a new PostgreSQL backend (fork, authentication) — measured in bench/ as the
    largest cost of a busy service. Requests past `pool_size` wait for a connection.

    A pooled connection that the server has closed (a restart, a terminated backend) is
    replaced when it is checked out, without a ping round trip (`pool_pre_ping` would
    cost three: BEGIN, the ping, ROLLBACK): see `_LostConnections`.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "server_settings": {
                "search_path": schema,
                "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                # Requests read pages, not whole tables: starting parallel workers costs
                # them more than the workers save (bench/results/2026-11-30-21-fields*.md:
                # a rare field value's page 47 -> 27 ms p50 at c=1, 282 -> 164 ms at c=10;
                # no list plan of bench/explain_tickets.py got slower).
                "max_parallel_workers_per_gather": "0",
            },
        },
    )
    guard = _LostConnections()
    event.listen(engine.sync_engine, "connect", guard.opened)
    event.listen(engine.sync_engine, "checkout", guard.checkout)
    _GUARDS[engine.sync_engine] = guard
    return engine


class _LostConnections:
    """Pool hooks that keep connections the database has dropped out of requests.

    A connection whose socket asyncpg has seen closed is replaced at checkout at no cost.
    But when the server drops every connection at once (a restart, a failover, backends
    terminated), the others may not look closed yet (the goodbye is still in flight, or
    read but not yet acted on), and each would fail one more request. So once a request
    fails because its connection was lost (`connection_lost`), every connection opened
    before that moment is replaced at its next checkout, as SQLAlchemy does itself for
    the disconnects it sees: after a restart at most the request in flight fails.
    """

    def __init__(self) -> None:
        self.lost_at = 0.0

    @staticmethod
    def opened(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["opened_at"] = time.monotonic()

    def checkout(self, dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # The pool discards a connection that raises DisconnectionError here and checks
        # out (or opens) another one.
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        if record.info.get("opened_at", 0.0) < self.lost_at:
            raise DisconnectionError("opened before the database was last lost")


_GUARDS: WeakKeyDictionary[Engine, _LostConnections] = WeakKeyDictionary()


def connection_lost(engine: AsyncEngine | None, exc: BaseException) -> bool:
    """Whether `exc` means the connection it happened on is gone (rather than a statement
    cancelled or no connection free); if so every older pooled connection is suspect."""
    if not database_unavailable(exc) or _in_chain(exc, _NOT_LOST):
        return False
    guard = _GUARDS.get(engine.sync_engine) if engine is not None else None
    if guard is not None:
        guard.lost_at = time.monotonic()
    return True


# What a lost or overloaded database raises, through SQLAlchemy or on the driver itself:
# connection failures (08xxx), shutdowns and cancels (57xxx: a restart, a terminated
# backend, the statement timeout), a refused or timed-out connect, and a pool with no
# connection free in time.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    # The protocol of a connection whose server went away mid-exchange.
    asyncpg.exceptions.InternalClientError,
    OSError,  # ConnectionRefusedError, TimeoutError, ...
    PoolTimeoutError,
    DisconnectionError,
)


# The exception classes whose handler asks `database_unavailable` (problems.py): what the
# driver and SQLAlchemy raise, and what they wrap.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    # What SQLAlchemy's adapter raises outside a statement it runs itself (a BEGIN sent
    # by session_driver): the driver's error translated, not yet wrapped in DBAPIError.
    AsyncAdapt_asyncpg_dbapi.Error,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    OSError,
    PoolTimeoutError,
    DisconnectionError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (its cause, or a DBAPIError's `orig`), five deep."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or getattr(seen, "orig", None)


def _unavailable(seen: BaseException) -> bool:
    if isinstance(seen, DBAPIError) and seen.connection_invalidated:
        return True
    if isinstance(seen, _UNAVAILABLE):
        return True
    # asyncpg's word for a statement on a connection the server closed (its other
    # InterfaceErrors are misuse, a 500).
    return isinstance(seen, asyncpg.exceptions.InterfaceError) and "closed" in str(seen)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not serve the request now (a 503, worth a
    retry), rather than a fault in the request or the code (a 500)."""
    return any(_unavailable(seen) for seen in _chain(exc))


# Unavailable, but the connection is fine: a statement cancelled by its timeout, or no
# connection free in the pool.
_NOT_LOST: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.QueryCanceledError,
    PoolTimeoutError,
)


def _in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(seen, kinds) for seen in _chain(exc))


# Text PostgreSQL cannot store (a NUL character, in practice): the request's fault, a 422.
_UNSTORABLE_TEXT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


def unstorable_text(exc: BaseException) -> bool:
    """Whether `exc` is PostgreSQL refusing a character of a value the client sent."""
    return _in_chain(exc, _UNSTORABLE_TEXT)


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection itself, from the engine's pool, outside any transaction.

    For the hot single-statement reads (docs/architecture.md, "Hot-path costs"; ADR 0022):
    SQLAlchemy's execution layer costs about 0.45 ms of CPU per statement on top of
    asyncpg's 0.3 ms (bench/), which a lookup made on every request of another service
    cannot afford.
    Statements run in autocommit, one consistent snapshot each; anything that writes,
    or reads more than once, belongs in a unit of work.
    """
    async with engine.connect() as conn:
        driver = _driver(await conn.get_raw_connection())
        try:
            yield driver
        except BaseException as exc:
            # SQLAlchemy never saw the statement, so it cannot tell that the connection
            # is broken: a connection the server dropped mid-statement must not go back
            # to the pool (the next request would fail on it too).
            if connection_lost(engine, exc) or _left_in_transaction(driver):
                await conn.invalidate()
            raise
        if _left_in_transaction(driver):
            await conn.invalidate()


def _left_in_transaction(driver: asyncpg.Connection) -> bool:
    """A transaction begun on the driver connection and still open when its block ends
    (a block cancelled between its statements and its rollback). SQLAlchemy's reset on
    return does not know of it, so the pooled connection would keep it, its locks held
    for ever and every later statement on it inside it: such a connection is closed
    instead, and the server rolls the transaction back."""
    return not driver.is_closed() and driver.is_in_transaction()


async def session_driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection of the session's transaction (begun if it was not yet).

    Statements on it are part of the unit of work's transaction: committed or rolled
    back with it. For the hot writes, where SQLAlchemy's statement building and
    execution cost more CPU than the database (measured here: about 73 % of raw asyncpg
    throughput this way, against 43 % for a Core statement; docs/architecture.md)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement that goes
    # through SQLAlchemy. Statements sent on the driver before that would run in
    # autocommit, each committed on its own whatever the unit of work does later; so the
    # adapter's transaction is begun here (its own BEGIN, which its commit and rollback
    # then end). tests/integration/test_atomic_writes.py in the tickets service proves it.
    adapter = raw.dbapi_connection
    if adapter is not None and adapter._transaction is None:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
    return _driver(raw)


def _driver(raw: PoolProxiedConnection) -> asyncpg.Connection:
    driver: asyncpg.Connection | None = raw.driver_connection
    if driver is None:  # only after the pool has invalidated it
        raise RuntimeError("the pooled connection has no driver connection")
    return driver


class Row(Protocol):
    """A result row by column name: SQLAlchemy's RowMapping or asyncpg's Record, so one
    row-to-domain function serves both the Core queries and the driver statements."""

    def __getitem__(self, key: str, /) -> Any: ...


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class SqlAlchemyUnitOfWork:
    """One transaction: repositories share its session; only `commit` makes work durable.

    Leaving the block without `commit` rolls back. `after_commit` callbacks (such as
    waking the outbox relay) run once the transaction is durable.
    """

    session: AsyncSession

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self._bind_repositories()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None and connection_lost(self._engine(), exc):
                # Statements on the driver connection bypass SQLAlchemy, which then
                # cannot tell the connection broke: discard it rather than pool it.
                await self.session.invalidate()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    def _engine(self) -> AsyncEngine | None:
        bind = self.session.bind
        return bind if isinstance(bind, AsyncEngine) else None

    def _bind_repositories(self) -> None:
        """Subclasses create their repositories on `self.session` here."""

    async def commit(self) -> None:
        await self.session.commit()
        if self._after_commit is not None:
            self._after_commit()


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE/ILIKE pattern (backslash is PostgreSQL's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
