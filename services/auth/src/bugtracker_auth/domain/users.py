"""Users and sessions: plain data and the rules that need no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
