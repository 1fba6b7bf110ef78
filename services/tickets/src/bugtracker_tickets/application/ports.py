"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from bugtracker_shared.events import CloudEvent

from bugtracker_tickets.domain.tickets import ProjectAccess, Status, Ticket


class ProjectDirectory(Protocol):
    """The projects service, asked with the caller's own token."""

    async def access(self, project_ref: str, *, token: str) -> ProjectAccess | None:
        """The caller's access to the project (by id or key); None when they may not see it."""
        ...

    async def is_member(self, project_id: uuid.UUID, user_id: uuid.UUID, *, token: str) -> bool: ...


@dataclass(frozen=True)
class TicketFilter:
    project_id: uuid.UUID
    statuses: tuple[Status, ...] = ()
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False


class TicketRepository(Protocol):
    async def next_number(self, project_id: uuid.UUID) -> int:
        """The next ticket number of the project, locked until the transaction ends."""
        ...

    async def add(self, ticket: Ticket) -> None: ...
    async def get(self, ticket_id: uuid.UUID) -> Ticket | None: ...
    async def get_by_key(self, key: str) -> Ticket | None: ...
    async def get_for_update(self, ticket_id: uuid.UUID) -> Ticket | None: ...
    async def update_assignee(self, ticket: Ticket) -> None: ...
    async def list(
        self,
        where: TicketFilter,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Ticket]:
        """Newest-updated first, keyset on (updated_at, id)."""
        ...


class EventSink(Protocol):
    async def add(self, event: CloudEvent) -> None: ...


class UnitOfWork(Protocol):
    tickets: TicketRepository
    outbox: EventSink

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
