"""The unit of work of a service that publishes events through its outbox."""

from __future__ import annotations

from typing import ClassVar, Self

from sqlalchemy import Table

from bugtracker_shared.db import SqlAlchemyUnitOfWork
from bugtracker_shared.outbox import OutboxWriter
from bugtracker_shared.ports import EventSink


class OutboxUnitOfWork(SqlAlchemyUnitOfWork):
    """A unit of work whose `outbox` adds events to `outbox_table` in its transaction,
    so they are published if and only if the work is committed.

    Subclasses set `outbox_table` and bind their repositories in `_bind_repositories`."""

    outbox_table: ClassVar[Table]
    outbox: EventSink

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.outbox = OutboxWriter(self.session, self.outbox_table)
        return self
