from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_auth.domain.errors import EmailTakenError
from bugtracker_auth.domain.users import GlobalRole, Session, User
from bugtracker_auth.infrastructure.tables import refresh_tokens, sessions, users


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        role=GlobalRole(row["role"]),
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user: User) -> None:
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(users).values(
                        id=user.id,
                        email=user.email,
                        display_name=user.display_name,
                        password_hash=user.password_hash,
                        role=user.role.value,
                        is_active=user.is_active,
                        created_at=user.created_at,
                        updated_at=user.updated_at,
                        version=user.version,
                    )
                )
        except IntegrityError as exc:  # a concurrent registration won the race
            raise EmailTakenError("An account with this email exists already.") from exc

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = (await self._session.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row._mapping) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = (await self._session.execute(select(users).where(users.c.email == email))).first()
        return _user(row._mapping) if row else None

    async def email_exists(self, email: str) -> bool:
        return bool(await self._session.scalar(select(exists().where(users.c.email == email))))

    async def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self._session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, updated_at=datetime.now(UTC))
        )


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, session: Session, refresh_token_hash: bytes) -> None:
        await self._session.execute(
            insert(sessions).values(
                id=session.id,
                user_id=session.user_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )
        await self._session.execute(
            insert(refresh_tokens).values(
                token_hash=refresh_token_hash,
                session_id=session.id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )
