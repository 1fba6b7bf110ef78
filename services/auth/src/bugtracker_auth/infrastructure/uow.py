from __future__ import annotations

from bugtracker_shared.uow import OutboxUnitOfWork

from bugtracker_auth.application.ports import SessionRepository, UserRepository
from bugtracker_auth.infrastructure.repositories import SqlSessionRepository, SqlUserRepository
from bugtracker_auth.infrastructure.tables import outbox


class AuthUnitOfWork(OutboxUnitOfWork):
    outbox_table = outbox
    users: UserRepository
    sessions: SessionRepository

    def _bind_repositories(self) -> None:
        self.users = SqlUserRepository(self.session)
        self.sessions = SqlSessionRepository(self.session)
