"""Auth use cases. Each one owns a unit of work and commits it once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bugtracker_shared.events import new_event
from bugtracker_shared.request_context import current_request_id

from bugtracker_auth.application.ports import (
    PasswordHasher,
    RefreshTokenFactory,
    TokenIssuer,
    UnitOfWork,
)
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    InvalidCredentialsError,
    RegistrationClosedError,
    UserNotFoundError,
)
from bugtracker_auth.domain.users import GlobalRole, IssuedTokens, Session, User, normalize_email

SERVICE = "auth"


def public_user(user: User) -> dict[str, object]:
    """The user as events carry it: never the password hash."""
    return {
        "id": str(user.id),
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role.value,
        "is_active": user.is_active,
    }


@dataclass
class AuthUseCases:
    uow: Callable[[], UnitOfWork]
    hasher: PasswordHasher
    tokens: TokenIssuer
    refresh_tokens: RefreshTokenFactory
    refresh_ttl: timedelta
    registration_open: bool = True

    async def register(
        self,
        *,
        email: str,
        password: str,
        display_name: str,
        role: GlobalRole = GlobalRole.MEMBER,
        self_service: bool = True,
    ) -> User:
        if self_service and not self.registration_open:
            raise RegistrationClosedError("Registration is turned off on this server.")
        email = normalize_email(email)
        password_hash = await self.hasher.hash(password)
        now = datetime.now(UTC)
        user = User(
            id=uuid.uuid4(),
            email=email,
            display_name=display_name.strip(),
            password_hash=password_hash,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        async with self.uow() as uow:
            if await uow.users.email_exists(email):
                raise EmailTakenError("An account with this email exists already.")
            await uow.users.add(user)
            await uow.outbox.add(
                new_event(
                    "user.registered",
                    service=SERVICE,
                    subject=user.id,
                    sequence=user.version,
                    data=public_user(user),
                    actor_id=user.id if self_service else None,
                    correlation_id=current_request_id(),
                )
            )
            await uow.commit()
        return user

    async def login(self, *, email: str, password: str) -> IssuedTokens:
        """Unknown email, wrong password and deactivated user look the same to a caller."""
        async with self.uow() as uow:
            user = await uow.users.get_by_email(normalize_email(email))
            if user is None:
                await self.hasher.burn(password)
                raise InvalidCredentialsError
            if not await self.hasher.verify(user.password_hash, password) or not user.is_active:
                raise InvalidCredentialsError
            if self.hasher.needs_rehash(user.password_hash):
                await uow.users.update_password_hash(user.id, await self.hasher.hash(password))
            now = datetime.now(UTC)
            session = Session(
                id=uuid.uuid4(),
                user_id=user.id,
                created_at=now,
                expires_at=now + self.refresh_ttl,
            )
            refresh_token, refresh_hash = self.refresh_tokens.new()
            await uow.sessions.add(session, refresh_hash)
            await uow.commit()
        access_token, expires_in = self.tokens.issue(user, session)
        return IssuedTokens(
            access_token=access_token,
            expires_in=expires_in,
            refresh_token=refresh_token,
            refresh_expires_in=int(self.refresh_ttl.total_seconds()),
        )

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError("No such user.")
        return user

    async def ensure_admin(self, *, email: str, password: str) -> tuple[User, bool]:
        """Create the first admin unless the account exists (idempotent for `make up`)."""
        async with self.uow() as uow:
            existing = await uow.users.get_by_email(normalize_email(email))
        if existing is not None:
            return existing, False
        user = await self.register(
            email=email,
            password=password,
            display_name="Administrator",
            role=GlobalRole.ADMIN,
            self_service=False,
        )
        return user, True
