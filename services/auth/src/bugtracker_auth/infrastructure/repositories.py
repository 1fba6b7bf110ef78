from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.pagination import (
    Listing,
    decode_time_id_cursor,
    time_id_key,
)
from bugtracker_shared.rows import Columns
from sqlalchemy import (
    Uuid,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_auth.domain.errors import EmailTakenError
from bugtracker_auth.domain.users import (
    GlobalRole,
    RefreshTokenRecord,
    RevokedSession,
    Session,
    User,
)
from bugtracker_auth.infrastructure.tables import refresh_tokens, sessions, users

USERS = Columns(User, users, load={"role": GlobalRole})
SESSIONS = Columns(Session, sessions)
_user = USERS.from_row


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user: User) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(users).values(USERS.values(user)))
        except IntegrityError as exc:  # a concurrent registration won the race
            raise EmailTakenError("An account with this email exists already.") from exc

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
        query = select(users).where(users.c.id == user_id)
        if lock:
            query = query.with_for_update(read=True)
        row = (await self._session.execute(query)).first()
        return _user(row._mapping) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = (await self._session.execute(select(users).where(users.c.email == email))).first()
        return _user(row._mapping) if row else None

    async def get_many(self, user_ids: Collection[uuid.UUID]) -> Sequence[User]:
        # One array parameter on the primary key, however many ids.
        ids = bindparam("ids", list(user_ids), type_=ARRAY(Uuid))
        rows = await self._session.execute(select(users).where(users.c.id == any_(ids)))
        return [_user(row._mapping) for row in rows]

    async def email_exists(self, email: str) -> bool:
        return bool(await self._session.scalar(select(exists().where(users.c.email == email))))

    async def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self._session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(
                password_hash=password_hash,
                updated_at=datetime.now(UTC),
                version=users.c.version + 1,
            )
        )

    async def update(
        self,
        user_id: uuid.UUID,
        *,
        display_name: str | None = None,
        role: GlobalRole | None = None,
        is_active: bool | None = None,
    ) -> User | None:
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["display_name"] = display_name
        if role is not None:
            changes["role"] = role.value
        if is_active is not None:
            changes["is_active"] = is_active
        if not changes:
            return await self.get(user_id)
        row = (
            await self._session.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(**changes, updated_at=datetime.now(UTC), version=users.c.version + 1)
                .returning(*users.c)
            )
        ).first()
        return _user(row._mapping) if row else None

    async def search(
        self,
        prefix: str | None,
        limit: int,
        cursor: str | None,
        *,
        among: Collection[uuid.UUID] | None = None,
        exact_email: str | None = None,
    ) -> Listing[User]:
        query = select(users).where(users.c.is_active.is_(True))
        if among is not None:
            # One array parameter, however many ids (IN would bind one parameter each).
            visible = users.c.id == any_(bindparam("among", list(among), type_=ARRAY(Uuid)))
            if exact_email is not None:
                visible = or_(visible, users.c.email == exact_email)
            query = query.where(visible)
        if prefix:
            pattern = _like_prefix(prefix.lower())
            query = query.where(
                or_(
                    users.c.email.like(pattern, escape="\\"),
                    func.lower(users.c.display_name).like(pattern, escape="\\"),
                )
            )
        if cursor:
            moment, ident = decode_time_id_cursor(cursor)
            query = query.where(tuple_(users.c.created_at, users.c.id) > tuple_(moment, ident))
        query = query.order_by(users.c.created_at, users.c.id).limit(limit + 1)
        rows = [_user(row._mapping) for row in await self._session.execute(query)]
        return Listing.from_overfetch(rows, limit, lambda u: time_id_key(u.created_at, u.id))


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, session: Session, refresh_token_hash: bytes) -> None:
        await self._session.execute(insert(sessions).values(SESSIONS.values(session)))
        await self._session.execute(
            insert(refresh_tokens).values(
                token_hash=refresh_token_hash,
                session_id=session.id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    async def find_refresh_token(self, token_hash: bytes) -> RefreshTokenRecord | None:
        row = (
            await self._session.execute(
                select(
                    refresh_tokens.c.session_id,
                    refresh_tokens.c.expires_at,
                    refresh_tokens.c.used_at,
                    sessions.c.user_id,
                    sessions.c.expires_at.label("session_expires_at"),
                    sessions.c.revoked_at.label("session_revoked_at"),
                    sessions.c.created_at.label("session_created_at"),
                )
                .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                .where(refresh_tokens.c.token_hash == token_hash)
                .with_for_update()
            )
        ).first()
        # The columns are labelled as the record's fields.
        return RefreshTokenRecord(**row._mapping) if row is not None else None

    async def rotate_refresh_token(
        self,
        old_hash: bytes,
        new_hash: bytes,
        *,
        session_id: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        await self._session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == old_hash)
            .values(used_at=now)
        )
        await self._session.execute(
            insert(refresh_tokens).values(
                token_hash=new_hash, session_id=session_id, created_at=now, expires_at=expires_at
            )
        )
        await self._session.execute(
            update(sessions).where(sessions.c.id == session_id).values(expires_at=expires_at)
        )

    async def revoke(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        condition = and_(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        if only is not None:
            condition = and_(condition, sessions.c.id == only)
        if keep is not None:
            condition = and_(condition, sessions.c.id != keep)
        result = await self._session.execute(
            update(sessions).where(condition).values(revoked_at=now).returning(sessions.c.id)
        )
        return [row.id for row in result]

    async def is_active(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        query = select(
            exists().where(
                sessions.c.id == session_id,
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                users.c.id == sessions.c.user_id,
                users.c.is_active.is_(True),
            )
        )
        return bool(await self._session.scalar(query))

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]:
        rows = await self._session.execute(
            select(sessions.c.id, sessions.c.user_id, sessions.c.revoked_at)
            .where(sessions.c.revoked_at >= since)
            .order_by(sessions.c.revoked_at)
        )
        return [
            RevokedSession(session_id=row.id, user_id=row.user_id, revoked_at=row.revoked_at)
            for row in rows
        ]
