from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork
from bugtracker_shared.outbox import OutboxWriter
from bugtracker_shared.ports import EventSink

from bugtracker_tickets.application.ports import (
    CommentRepository,
    HistoryRepository,
    IdempotencyStore,
    TicketRepository,
    WatcherRepository,
)
from bugtracker_tickets.infrastructure.repositories import (
    SqlCommentRepository,
    SqlHistoryRepository,
    SqlIdempotencyStore,
    SqlTicketRepository,
    SqlWatcherRepository,
)
from bugtracker_tickets.infrastructure.tables import outbox


class TicketsUnitOfWork(SqlAlchemyUnitOfWork):
    tickets: TicketRepository
    comments: CommentRepository
    history: HistoryRepository
    watchers: WatcherRepository
    idempotency: IdempotencyStore
    outbox: EventSink

    def _bind_repositories(self) -> None:
        self.tickets = SqlTicketRepository(self.session)
        self.comments = SqlCommentRepository(self.session)
        self.history = SqlHistoryRepository(self.session)
        self.watchers = SqlWatcherRepository(self.session)
        self.idempotency = SqlIdempotencyStore(self.session)
        self.outbox = OutboxWriter(self.session, outbox)
