"""Personal access tokens (docs/adr/0042): long-lived credentials a user makes for
scripts, with `read` or `read` and `write` scopes, stored only as a hash."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Every token starts with it: recognisable in a leaked file, and by the gateway.
TOKEN_PREFIX = "btp_"  # noqa: S105 (a prefix, not a secret)
# How many live (neither revoked nor expired) tokens a user may hold.
MAX_LIVE_TOKENS = 100
MIN_LIFETIME_DAYS = 1
MAX_LIFETIME_DAYS = 365
# `last_used_at` is written at most this often per token.
LAST_USED_PRECISION = timedelta(seconds=60)


class TokenScope(StrEnum):
    READ = "read"
    WRITE = "write"


def canonical_scopes(scopes: Iterable[str]) -> tuple[TokenScope, ...]:
    """The scopes in their one order (`read` before `write`); `write` implies `read`."""
    given = {TokenScope(scope) for scope in scopes}
    if TokenScope.WRITE in given:
        given.add(TokenScope.READ)
    return tuple(scope for scope in TokenScope if scope in given)


@dataclass
class PersonalAccessToken:
    """A stored token, without its secret (only its hash is stored, apart from this)."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    scopes: tuple[TokenScope, ...]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def live_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    @property
    def scope_claim(self) -> str:
        """The access token's `scope` claim: the scopes, space-separated."""
        return " ".join(scope.value for scope in self.scopes)

    def use_is_news(self, used_at: datetime) -> bool:
        """Whether a use at `used_at` is worth a write of `last_used_at`."""
        return self.last_used_at is None or self.last_used_at < used_at - LAST_USED_PRECISION


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its secret, which is shown this once."""

    token: PersonalAccessToken
    secret: str


@dataclass(frozen=True)
class ExchangedToken:
    """What the gateway gets for a live token: an access token of its owner (`sid` is the
    token's id) and the token itself."""

    access_token: str
    expires_in: int
    token: PersonalAccessToken
