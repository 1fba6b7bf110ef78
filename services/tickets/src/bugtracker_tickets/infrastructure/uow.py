from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork
from bugtracker_shared.outbox import OutboxWriter

from bugtracker_tickets.application.ports import EventSink, TicketRepository
from bugtracker_tickets.infrastructure.repositories import SqlTicketRepository
from bugtracker_tickets.infrastructure.tables import outbox


class TicketsUnitOfWork(SqlAlchemyUnitOfWork):
    tickets: TicketRepository
    outbox: EventSink

    def _bind_repositories(self) -> None:
        self.tickets = SqlTicketRepository(self.session)
        self.outbox = OutboxWriter(self.session, outbox)
