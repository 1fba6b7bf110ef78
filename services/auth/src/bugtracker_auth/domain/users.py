"""Users and sessions: plain data and the rules that need no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class GlobalRole(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


def normalize_email(email: str) -> str:
    """Emails are unique case-insensitively; we store and compare the lower-cased form."""
    return email.strip().lower()


@dataclass
class User:
    id: uuid.UUID
    email: str
    display_name: str
    password_hash: str
    role: GlobalRole
    is_active: bool
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class RefreshTokenRecord:
    """A stored refresh token (its hash) and the state of the session it belongs to."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None
    session_expires_at: datetime
    session_revoked_at: datetime | None
    session_created_at: datetime

    def usable_at(self, now: datetime, *, session_max_lifetime: timedelta) -> bool:
        """Unspent, unexpired, its session live and younger than the absolute lifetime
        (refreshing extends a session, but never past `session_max_lifetime`)."""
        return (
            self.used_at is None
            and self.session_revoked_at is None
            and now < self.expires_at
            and now < self.session_expires_at
            and now < self.session_created_at + session_max_lifetime
        )


@dataclass(frozen=True)
class DirectoryEntry:
    """A user as the directory shows them: the email only to callers who may see it."""

    id: uuid.UUID
    display_name: str
    email: str | None


@dataclass(frozen=True)
class RevokedSession:
    session_id: uuid.UUID
    user_id: uuid.UUID
    revoked_at: datetime


class RevocationReason(StrEnum):
    LOGOUT = "logout"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 (a reason, not a secret)
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a reason, not a secret)
    USER_DEACTIVATED = "user_deactivated"
    # A personal access token revoked by its owner: `session_ids` is [the token's id].
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 (a reason, not a secret)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
