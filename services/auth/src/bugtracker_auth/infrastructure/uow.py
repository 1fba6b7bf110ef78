from __future__ import annotations

from bugtracker_shared.uow import OutboxUnitOfWork

from bugtracker_auth.application.ports import (
    PersonalAccessTokenRepository,
    SessionRepository,
    UserRepository,
)
from bugtracker_auth.infrastructure.personal_tokens import SqlPersonalAccessTokenRepository
from bugtracker_auth.infrastructure.repositories import SqlSessionRepository, SqlUserRepository
from bugtracker_auth.infrastructure.tables import outbox


class AuthUnitOfWork(OutboxUnitOfWork):
    outbox_table = outbox
    users: UserRepository
    sessions: SessionRepository
    personal_tokens: PersonalAccessTokenRepository

    def _bind_repositories(self) -> None:
        self.users = SqlUserRepository(self.session)
        self.sessions = SqlSessionRepository(self.session)
        self.personal_tokens = SqlPersonalAccessTokenRepository(self.session)
