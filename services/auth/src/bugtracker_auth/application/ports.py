"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from bugtracker_shared.pagination import Listing
from bugtracker_shared.ports import EventSink, Transaction

from bugtracker_auth.domain.personal_tokens import PersonalAccessToken
from bugtracker_auth.domain.users import (
    GlobalRole,
    IssuedTokens,
    RefreshTokenRecord,
    RevokedSession,
    Session,
    User,
)


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...
    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
        """`lock` takes a share lock on the row until the transaction ends, so a concurrent
        deactivation is seen (it waits for us, or we for it)."""
        ...

    async def get_by_email(self, email: str) -> User | None: ...
    async def get_many(self, user_ids: Collection[uuid.UUID]) -> Sequence[User]:
        """The users of these ids that exist, active or not, in any order (one query)."""
        ...

    async def email_exists(self, email: str) -> bool: ...
    async def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...
    async def update(
        self,
        user_id: uuid.UUID,
        *,
        display_name: str | None = None,
        role: GlobalRole | None = None,
        is_active: bool | None = None,
    ) -> User | None:
        """Apply the given changes, bump the version; the user after the change."""
        ...

    async def search(
        self,
        prefix: str | None,
        limit: int,
        cursor: str | None,
        *,
        among: Collection[uuid.UUID] | None = None,
        exact_email: str | None = None,
    ) -> Listing[User]:
        """Active users whose email or display name starts with `prefix` (case-insensitive);
        with `among`, only those users and the one whose email is `exact_email`."""
        ...


class SessionRepository(Protocol):
    async def add(self, session: Session, refresh_token_hash: bytes) -> None: ...
    async def find_refresh_token(self, token_hash: bytes) -> RefreshTokenRecord | None:
        """The token row, locked until the transaction ends (concurrent refreshes queue)."""
        ...

    async def rotate_refresh_token(
        self,
        old_hash: bytes,
        new_hash: bytes,
        *,
        session_id: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> None: ...
    async def revoke(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Revoke the user's live sessions (just `only`, or all but `keep`); their ids."""
        ...

    async def is_active(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """The session is live and belongs to an active user."""
        ...

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]: ...


class PersonalAccessTokenRepository(Protocol):
    """Personal access tokens (docs/adr/0042), by id and by the hash of their secret."""

    async def add(self, token: PersonalAccessToken, token_hash: bytes) -> None: ...
    async def count_live(self, user_id: uuid.UUID, *, now: datetime) -> int:
        """The user's live tokens, counted under a lock on the user's row (held until the
        transaction ends), so that concurrent creations cannot pass the cap together."""
        ...

    async def list_tokens(
        self, user_id: uuid.UUID, limit: int, cursor: str | None
    ) -> Listing[PersonalAccessToken]:
        """The user's tokens that are not revoked, newest first."""
        ...

    async def find(self, token_hash: bytes) -> PersonalAccessToken | None: ...
    async def revoke(
        self, user_id: uuid.UUID, *, now: datetime, only: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """Revoke the user's tokens that are not revoked yet (just `only`); their ids."""
        ...

    async def is_live(self, token_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime) -> bool:
        """The token is neither revoked nor expired and its user is active."""
        ...

    async def record_uses(self, uses: Mapping[uuid.UUID, datetime]) -> int:
        """Set `last_used_at` of these tokens where it is unset or more than a minute
        older than the use; how many rows changed."""
        ...

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]:
        """Tokens revoked since then, as sessions (the gateway's revocation list)."""
        ...


class UnitOfWork(Transaction, Protocol):
    users: UserRepository
    sessions: SessionRepository
    personal_tokens: PersonalAccessTokenRepository
    outbox: EventSink


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    def needs_rehash(self, password_hash: str) -> bool: ...
    async def burn(self, password: str) -> None:
        """Spend the time of one verification, so unknown emails answer as slowly."""


class CommonPasswords(Protocol):
    """The list of common and breached passwords, case-folded."""

    def __contains__(self, password: object) -> bool: ...


class LoginThrottle(Protocol):
    """Every method raises `ThrottleUnavailableError` when the counters cannot be reached:
    no password is checked without them (ADR 0037)."""

    async def check(self, client_ip: str | None, email: str) -> None:
        """Raise `RateLimitedError` when this client must wait before trying this account's
        password again (logins and password changes alike)."""

    async def failed(self, client_ip: str | None, email: str) -> None: ...
    async def succeeded(self, client_ip: str | None, email: str) -> None: ...


class ProjectDirectory(Protocol):
    """The projects service, which owns memberships."""

    async def co_members(self, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
        """The users who share a (not deleted) project with `user_id`; raises
        `UpstreamUnavailableError` when projects cannot answer."""
        ...


class TokenIssuer(Protocol):
    def issue(
        self,
        user: User,
        session: Session,
        *,
        scope: str | None = None,
        not_after: datetime | None = None,
    ) -> tuple[str, int]:
        """An access token for this session and its lifetime in seconds; with `scope`
        (a personal access token's), that claim too, and it expires no later than
        `not_after`."""
        ...


class RefreshTokenFactory(Protocol):
    def new(self) -> tuple[str, bytes]:
        """A fresh opaque refresh token and the hash that is stored in its place."""
        ...

    def hash(self, token: str) -> bytes: ...


class PersonalTokenFactory(Protocol):
    def new(self) -> tuple[str, bytes]:
        """A fresh personal access token (`btp_...`) and the hash stored in its place."""
        ...

    def hash(self, token: str) -> bytes: ...


__all__ = [
    "CommonPasswords",
    "IssuedTokens",
    "LoginThrottle",
    "PasswordHasher",
    "PersonalAccessTokenRepository",
    "PersonalTokenFactory",
    "ProjectDirectory",
    "RefreshTokenFactory",
    "SessionRepository",
    "TokenIssuer",
    "UnitOfWork",
    "UserRepository",
]
