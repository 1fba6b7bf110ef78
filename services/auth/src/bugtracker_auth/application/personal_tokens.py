"""Personal access tokens (docs/adr/0042): made, listed and revoked by their owner, and
exchanged by the gateway for short access tokens. Each use case owns its unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bugtracker_shared.pagination import Listing

from bugtracker_auth.application.ports import PersonalTokenFactory, TokenIssuer, UnitOfWork
from bugtracker_auth.application.revocations import session_revoked
from bugtracker_auth.domain.errors import (
    InsufficientScopeError,
    InvalidPersonalAccessTokenError,
    PersonalAccessTokenNotFoundError,
    TooManyTokensError,
    UserNotFoundError,
)
from bugtracker_auth.domain.personal_tokens import (
    MAX_LIVE_TOKENS,
    TOKEN_PREFIX,
    CreatedToken,
    ExchangedToken,
    PersonalAccessToken,
    TokenScope,
)
from bugtracker_auth.domain.users import RevocationReason, Session


@dataclass
class PersonalTokenUseCases:
    uow: Callable[[], UnitOfWork]
    tokens: TokenIssuer
    secrets: PersonalTokenFactory
    # How long after a revocation an access token minted for the token may still verify
    # (the access-token lifetime plus the verifiers' leeway): `forget_after` of the event.
    revocation_horizon: timedelta
    max_live_tokens: int = MAX_LIVE_TOKENS

    async def create(
        self,
        *,
        user_id: uuid.UUID,
        via_personal_token: bool,
        name: str,
        scopes: tuple[TokenScope, ...],
        lifetime: timedelta,
    ) -> CreatedToken:
        """A new token for the caller; never from a personal access token (a leaked token
        must not be able to outlive its own revocation)."""
        if via_personal_token:
            raise InsufficientScopeError("A personal access token cannot create tokens.")
        secret, token_hash = self.secrets.new()
        now = datetime.now(UTC)
        token = PersonalAccessToken(
            id=uuid.uuid4(),
            user_id=user_id,
            name=name.strip(),
            scopes=scopes,
            created_at=now,
            expires_at=now + lifetime,
        )
        async with self.uow() as uow:
            # Counted first: that locks the user's row (concurrent creations queue, and a
            # deactivation waits for us or we for it), then the user is read after it.
            live = await uow.personal_tokens.count_live(user_id, now=now)
            user = await uow.users.get(user_id)
            if user is None or not user.is_active:
                raise UserNotFoundError("No such user.")
            if live >= self.max_live_tokens:
                raise TooManyTokensError(
                    f"You have {self.max_live_tokens} live tokens already; revoke one first."
                )
            await uow.personal_tokens.add(token, token_hash)
            await uow.commit()
        return CreatedToken(token=token, secret=secret)

    async def list_tokens(
        self, *, user_id: uuid.UUID, limit: int, cursor: str | None
    ) -> Listing[PersonalAccessToken]:
        async with self.uow() as uow:
            return await uow.personal_tokens.list_tokens(user_id, limit, cursor)

    async def revoke(self, *, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
        """Revoke one of the caller's tokens; `auth.session_revoked` (the token's id as the
        session) goes out in the same transaction, so the gateway refuses it at once."""
        now = datetime.now(UTC)
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
            revoked = await uow.personal_tokens.revoke(user_id, now=now, only=token_id)
            if user is None or not revoked:
                raise PersonalAccessTokenNotFoundError
            await uow.outbox.add(
                session_revoked(
                    user,
                    revoked,
                    now,
                    horizon=self.revocation_horizon,
                    reason=RevocationReason.TOKEN_REVOKED,
                    actor_id=user.id,
                )
            )
            await uow.commit()

    async def exchange(self, *, secret: str) -> ExchangedToken:
        """An access token of the owner for a live token of an active user: `sid` is the
        token's id, `scope` its scopes, and it expires no later than the token. Also
        notes the use (at most once a minute). Anything else: one answer."""
        if not secret.startswith(TOKEN_PREFIX):
            raise InvalidPersonalAccessTokenError
        now = datetime.now(UTC)
        async with self.uow() as uow:
            token = await uow.personal_tokens.find(self.secrets.hash(secret))
            if token is None or not token.live_at(now):
                raise InvalidPersonalAccessTokenError
            user = await uow.users.get(token.user_id)
            if user is None or not user.is_active:
                raise InvalidPersonalAccessTokenError
            if token.use_is_news(now):
                await uow.personal_tokens.record_uses({token.id: now})
                await uow.commit()
        access_token, expires_in = self.tokens.issue(
            user,
            Session(
                id=token.id,
                user_id=user.id,
                created_at=token.created_at,
                expires_at=token.expires_at,
            ),
            scope=token.scope_claim,
            not_after=token.expires_at,
        )
        return ExchangedToken(access_token=access_token, expires_in=expires_in, token=token)

    async def record_uses(self, uses: Mapping[uuid.UUID, datetime]) -> int:
        """The gateway's report of when each token was last used: written where it is
        news (unset, or more than a minute older)."""
        if not uses:
            return 0
        async with self.uow() as uow:
            changed = await uow.personal_tokens.record_uses(uses)
            await uow.commit()
        return changed
