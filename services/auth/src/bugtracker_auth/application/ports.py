"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Protocol, Self

from bugtracker_shared.events import CloudEvent

from bugtracker_auth.domain.users import IssuedTokens, Session, User


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...
    async def get(self, user_id: uuid.UUID) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def email_exists(self, email: str) -> bool: ...
    async def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...


class SessionRepository(Protocol):
    async def add(self, session: Session, refresh_token_hash: bytes) -> None: ...


class EventSink(Protocol):
    async def add(self, event: CloudEvent) -> None: ...


class UnitOfWork(Protocol):
    users: UserRepository
    sessions: SessionRepository
    outbox: EventSink

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    def needs_rehash(self, password_hash: str) -> bool: ...
    async def burn(self, password: str) -> None:
        """Spend the time of one verification, so unknown emails answer as slowly."""


class TokenIssuer(Protocol):
    def issue(self, user: User, session: Session) -> tuple[str, int]:
        """An access token for this session and its lifetime in seconds."""
        ...


class RefreshTokenFactory(Protocol):
    def new(self) -> tuple[str, bytes]:
        """A fresh opaque refresh token and the hash that is stored in its place."""
        ...


__all__ = [
    "EventSink",
    "IssuedTokens",
    "PasswordHasher",
    "RefreshTokenFactory",
    "SessionRepository",
    "TokenIssuer",
    "UnitOfWork",
    "UserRepository",
]
