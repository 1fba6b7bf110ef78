"""Personal access tokens in `auth.personal_access_tokens` (docs/adr/0042)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bugtracker_shared.pagination import Listing, decode_time_id_cursor, time_id_key
from sqlalchemy import (
    DateTime,
    Uuid,
    and_,
    column,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_auth.domain.personal_tokens import (
    LAST_USED_PRECISION,
    PersonalAccessToken,
    TokenScope,
)
from bugtracker_auth.domain.users import RevokedSession
from bugtracker_auth.infrastructure.tables import personal_access_tokens as tokens
from bugtracker_auth.infrastructure.tables import users

_COLUMNS = (
    tokens.c.id,
    tokens.c.user_id,
    tokens.c.name,
    tokens.c.scopes,
    tokens.c.created_at,
    tokens.c.expires_at,
    tokens.c.last_used_at,
    tokens.c.revoked_at,
)


def _token(row: Mapping[Any, Any]) -> PersonalAccessToken:
    return PersonalAccessToken(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        scopes=tuple(TokenScope(scope) for scope in row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class SqlPersonalAccessTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token: PersonalAccessToken, token_hash: bytes) -> None:
        await self._session.execute(
            insert(tokens).values(
                id=token.id,
                user_id=token.user_id,
                name=token.name,
                scopes=[scope.value for scope in token.scopes],
                token_hash=token_hash,
                created_at=token.created_at,
                expires_at=token.expires_at,
                last_used_at=token.last_used_at,
                revoked_at=token.revoked_at,
            )
        )

    async def count_live(self, user_id: uuid.UUID, *, now: datetime) -> int:
        # The user's row locked against other creations (and not against logins, which
        # take a share lock): the count below stays true until this transaction ends.
        await self._session.execute(
            select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True)
        )
        count = await self._session.scalar(
            select(func.count())
            .select_from(tokens)
            .where(
                tokens.c.user_id == user_id,
                tokens.c.revoked_at.is_(None),
                tokens.c.expires_at > now,
            )
        )
        return int(count or 0)

    async def list_tokens(
        self, user_id: uuid.UUID, limit: int, cursor: str | None
    ) -> Listing[PersonalAccessToken]:
        query = select(*_COLUMNS).where(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
        if cursor:
            moment, ident = decode_time_id_cursor(cursor)
            query = query.where(tuple_(tokens.c.created_at, tokens.c.id) < tuple_(moment, ident))
        query = query.order_by(tokens.c.created_at.desc(), tokens.c.id.desc()).limit(limit + 1)
        rows = [_token(row._mapping) for row in await self._session.execute(query)]
        return Listing.from_overfetch(rows, limit, lambda t: time_id_key(t.created_at, t.id))

    async def find(self, token_hash: bytes) -> PersonalAccessToken | None:
        row = (
            await self._session.execute(select(*_COLUMNS).where(tokens.c.token_hash == token_hash))
        ).first()
        return _token(row._mapping) if row is not None else None

    async def revoke(
        self, user_id: uuid.UUID, *, now: datetime, only: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        condition = and_(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
        if only is not None:
            condition = and_(condition, tokens.c.id == only)
        result = await self._session.execute(
            update(tokens).where(condition).values(revoked_at=now).returning(tokens.c.id)
        )
        return [row.id for row in result]

    async def is_live(self, token_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime) -> bool:
        query = select(
            exists().where(
                tokens.c.id == token_id,
                tokens.c.user_id == user_id,
                tokens.c.revoked_at.is_(None),
                tokens.c.expires_at > now,
                users.c.id == tokens.c.user_id,
                users.c.is_active.is_(True),
            )
        )
        return bool(await self._session.scalar(query))

    async def record_uses(self, uses: Mapping[uuid.UUID, datetime]) -> int:
        if not uses:
            return 0
        # One statement for the whole report: UPDATE ... FROM (VALUES ...).
        reported = values(
            column("id", Uuid), column("used_at", DateTime(timezone=True)), name="reported"
        ).data(sorted(uses.items()))
        result = await self._session.execute(
            update(tokens)
            .where(
                tokens.c.id == reported.c.id,
                or_(
                    tokens.c.last_used_at.is_(None),
                    tokens.c.last_used_at < reported.c.used_at - LAST_USED_PRECISION,
                ),
            )
            .values(last_used_at=reported.c.used_at)
            .returning(tokens.c.id)
        )
        return len(result.all())

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]:
        rows = await self._session.execute(
            select(tokens.c.id, tokens.c.user_id, tokens.c.revoked_at)
            .where(tokens.c.revoked_at >= since)
            .order_by(tokens.c.revoked_at)
        )
        return [
            RevokedSession(session_id=row.id, user_id=row.user_id, revoked_at=row.revoked_at)
            for row in rows
        ]
