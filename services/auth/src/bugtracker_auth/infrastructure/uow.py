from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork
from bugtracker_shared.outbox import OutboxWriter
from bugtracker_shared.ports import EventSink

from bugtracker_auth.application.ports import SessionRepository, UserRepository
from bugtracker_auth.infrastructure.repositories import SqlSessionRepository, SqlUserRepository
from bugtracker_auth.infrastructure.tables import outbox


class AuthUnitOfWork(SqlAlchemyUnitOfWork):
    users: UserRepository
    sessions: SessionRepository
    outbox: EventSink

    def _bind_repositories(self) -> None:
        self.users = SqlUserRepository(self.session)
        self.sessions = SqlSessionRepository(self.session)
        self.outbox = OutboxWriter(self.session, outbox)
