"""Database helpers: engines and the unit of work that owns every transaction."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, *, schema: str, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine whose connections see only the service's own schema."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={"server_settings": {"search_path": schema}},
    )


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
            await self.session.rollback()
        finally:
            await self.session.close()

    def _bind_repositories(self) -> None:
        """Subclasses create their repositories on `self.session` here."""

    async def commit(self) -> None:
        await self.session.commit()
        if self._after_commit is not None:
            self._after_commit()


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE/ILIKE pattern (backslash is PostgreSQL's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
