"""Auth use cases. Each one owns a unit of work and commits it once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bugtracker_shared.event_schemas import UserDeactivated, UserRegistered
from bugtracker_shared.events import new_event
from bugtracker_shared.pagination import Listing
from bugtracker_shared.request_context import current_request_id

from bugtracker_auth.application.ports import (
    CommonPasswords,
    LoginThrottle,
    PasswordHasher,
    ProjectDirectory,
    RefreshTokenFactory,
    TokenIssuer,
    UnitOfWork,
)
from bugtracker_auth.application.revocations import revocation_data, session_revoked
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    ForbiddenError,
    InsufficientScopeError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RegistrationClosedError,
    SessionRevokedError,
    UserNotFoundError,
    WrongCurrentPasswordError,
)
from bugtracker_auth.domain.passwords import check_password
from bugtracker_auth.domain.users import (
    DirectoryEntry,
    GlobalRole,
    IssuedTokens,
    RevocationReason,
    RevokedSession,
    Session,
    User,
    normalize_email,
)

SERVICE = "auth"
# Verifiers accept a token a few seconds past `exp` (clock leeway); consumers keep a
# revoked session a little longer than the access-token lifetime to cover it.
VERIFIER_LEEWAY = timedelta(seconds=5)


def public_user(user: User) -> dict[str, Any]:
    """The user as events carry it (the fields of event_schemas.UserData): never the
    password hash."""
    return {
        "id": user.id,
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
    access_ttl: timedelta = timedelta(minutes=10)
    common_passwords: CommonPasswords = field(default_factory=frozenset)
    throttle: LoginThrottle | None = None
    registration_open: bool = True
    # Who shares a project with whom (the user directory); None: nobody, as far as we know.
    projects: ProjectDirectory | None = None
    # A session ends this long after its login, however often it is refreshed.
    session_max_lifetime: timedelta = timedelta(days=30)

    @property
    def revocation_horizon(self) -> timedelta:
        """How long after a revocation an access token of that session may still exist."""
        return self.access_ttl + VERIFIER_LEEWAY

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
        display_name = display_name.strip()
        check_password(
            password, email=email, display_name=display_name, common=self.common_passwords
        )
        async with self.uow() as uow:
            if await uow.users.email_exists(email):
                raise EmailTakenError("An account with this email exists already.")
        password_hash = await self.hasher.hash(password)
        now = datetime.now(UTC)
        user = User(
            id=uuid.uuid4(),
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        async with self.uow() as uow:
            await uow.users.add(user)
            await uow.outbox.add(
                new_event(
                    "user.registered",
                    service=SERVICE,
                    subject=user.id,
                    sequence=user.version,
                    data=UserRegistered(**public_user(user)),
                    actor_id=user.id if self_service else None,
                    correlation_id=current_request_id(),
                )
            )
            await uow.commit()
        return user

    async def login(
        self, *, email: str, password: str, client_ip: str | None = None
    ) -> IssuedTokens:
        """Unknown email, wrong password and deactivated user look the same to a caller:
        the same error, and one password verification each."""
        email = normalize_email(email)
        if self.throttle is not None:
            await self.throttle.check(client_ip, email)
        # The hash is verified outside any transaction: no pooled connection waits on it.
        async with self.uow() as uow:
            found = await uow.users.get_by_email(email)
        if found is None:
            await self.hasher.burn(password)
            await self._failed(client_ip, email)
            raise InvalidCredentialsError
        if not await self.hasher.verify(found.password_hash, password) or not found.is_active:
            await self._failed(client_ip, email)
            raise InvalidCredentialsError
        # The right password: recorded before the session is written, so a throttle store
        # that fails now (503) leaves no session behind.
        if self.throttle is not None:
            await self.throttle.succeeded(client_ip, email)
        new_hash = (
            await self.hasher.hash(password)
            if self.hasher.needs_rehash(found.password_hash)
            else None
        )
        now = datetime.now(UTC)
        session = Session(
            id=uuid.uuid4(),
            user_id=found.id,
            created_at=now,
            expires_at=now + min(self.refresh_ttl, self.session_max_lifetime),
        )
        refresh_token, refresh_hash = self.refresh_tokens.new()
        async with self.uow() as uow:
            # Locked: a deactivation running now either sees this session or wins first.
            user = await uow.users.get(found.id, lock=True)
            if user is None or not user.is_active:
                raise InvalidCredentialsError
            if new_hash is not None and user.password_hash == found.password_hash:
                await uow.users.update_password_hash(user.id, new_hash)
            await uow.sessions.add(session, refresh_hash)
            await uow.commit()
        return self._issue(user, session, refresh_token, now=now)

    async def _failed(self, client_ip: str | None, email: str) -> None:
        if self.throttle is not None:
            await self.throttle.failed(client_ip, email)

    def _issue(
        self, user: User, session: Session, refresh_token: str, *, now: datetime
    ) -> IssuedTokens:
        access_token, expires_in = self.tokens.issue(user, session)
        return IssuedTokens(
            access_token=access_token,
            expires_in=expires_in,
            refresh_token=refresh_token,
            # The refresh token lives as long as its session may still (a whole TTL, or
            # less near the session's absolute end).
            refresh_expires_in=int((session.expires_at - now).total_seconds()),
        )

    async def refresh(self, *, refresh_token: str) -> IssuedTokens:
        """Spend a refresh token for a new pair. A spent token presented again means it
        was stolen (or the client misbehaves): the whole session is revoked."""
        old_hash = self.refresh_tokens.hash(refresh_token)
        now = datetime.now(UTC)
        async with self.uow() as uow:
            record = await uow.sessions.find_refresh_token(old_hash)
            if record is None:
                raise InvalidRefreshTokenError
            if record.used_at is not None and record.session_revoked_at is None:
                user = await uow.users.get(record.user_id)
                revoked = await uow.sessions.revoke(record.user_id, now=now, only=record.session_id)
                if user is not None and revoked:
                    await self._session_revoked(
                        uow, user, revoked, now, RevocationReason.REFRESH_TOKEN_REUSE, None
                    )
                await uow.commit()
                raise InvalidRefreshTokenError
            if not record.usable_at(now, session_max_lifetime=self.session_max_lifetime):
                raise InvalidRefreshTokenError
            user = await uow.users.get(record.user_id, lock=True)
            if user is None or not user.is_active:
                raise InvalidRefreshTokenError
            new_token, new_hash = self.refresh_tokens.new()
            expires_at = min(
                now + self.refresh_ttl, record.session_created_at + self.session_max_lifetime
            )
            await uow.sessions.rotate_refresh_token(
                old_hash, new_hash, session_id=record.session_id, now=now, expires_at=expires_at
            )
            await uow.commit()
        session = Session(
            id=record.session_id,
            user_id=user.id,
            created_at=record.session_created_at,
            expires_at=expires_at,
        )
        return self._issue(user, session, new_token, now=now)

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        now = datetime.now(UTC)
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                return
            revoked = await uow.sessions.revoke(user_id, now=now, only=session_id)
            if revoked:
                await self._session_revoked(
                    uow, user, revoked, now, RevocationReason.LOGOUT, user_id
                )
            await uow.commit()

    async def change_password(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        current_password: str,
        new_password: str,
        client_ip: str | None = None,
        via_personal_token: bool = False,
    ) -> None:
        """Verify the current password, set the new one, end every other session. Wrong
        current passwords are throttled like failed logins (a stolen access token must not
        give unlimited guesses at the password); a personal access token may not try."""
        if via_personal_token:
            raise InsufficientScopeError("A personal access token cannot change the password.")
        user = await self.get_user(user_id)
        if self.throttle is not None:
            await self.throttle.check(client_ip, user.email)
        if not await self.hasher.verify(user.password_hash, current_password):
            await self._failed(client_ip, user.email)
            raise WrongCurrentPasswordError
        if self.throttle is not None:
            await self.throttle.succeeded(client_ip, user.email)
        check_password(
            new_password,
            email=user.email,
            display_name=user.display_name,
            common=self.common_passwords,
        )
        new_hash = await self.hasher.hash(new_password)
        now = datetime.now(UTC)
        async with self.uow() as uow:
            await uow.users.update_password_hash(user_id, new_hash)
            revoked = await uow.sessions.revoke(user_id, now=now, keep=session_id)
            if revoked:
                await self._session_revoked(
                    uow, user, revoked, now, RevocationReason.PASSWORD_CHANGED, user_id
                )
            await uow.commit()

    async def update_profile(self, *, user_id: uuid.UUID, display_name: str) -> User:
        async with self.uow() as uow:
            user = await uow.users.update(user_id, display_name=display_name.strip())
            if user is None:
                raise UserNotFoundError("No such user.")
            await uow.commit()
        return user

    async def administer_user(
        self,
        *,
        actor_id: uuid.UUID,
        user_id: uuid.UUID,
        role: GlobalRole | None,
        is_active: bool | None,
    ) -> User:
        """An admin changes a user's role or deactivates them (which ends every session)."""
        now = datetime.now(UTC)
        async with self.uow() as uow:
            # The role in the database, not the token's claim: a demoted admin's token
            # still says admin for up to ten minutes.
            actor = await uow.users.get(actor_id)
            if actor is None or not actor.is_active or actor.role is not GlobalRole.ADMIN:
                raise ForbiddenError("Only an administrator may change users.")
            before = await uow.users.get(user_id, lock=True)
            if before is None:
                raise UserNotFoundError("No such user.")
            if actor_id == user_id and (is_active is False or role is GlobalRole.MEMBER):
                raise ForbiddenError("Administrators cannot demote or deactivate themselves.")
            user = await uow.users.update(user_id, role=role, is_active=is_active)
            if user is None:
                raise UserNotFoundError("No such user.")
            if before.is_active and not user.is_active:
                # Its personal access tokens end with it (docs/adr/0042): their ids are
                # the sessions of the access tokens the gateway minted for them.
                revoked = [
                    *await uow.sessions.revoke(user_id, now=now),
                    *await uow.personal_tokens.revoke(user_id, now=now),
                ]
                await uow.outbox.add(
                    new_event(
                        "user.deactivated",
                        service=SERVICE,
                        subject=user.id,
                        sequence=user.version,
                        data=UserDeactivated(
                            **public_user(user),
                            **revocation_data(
                                user.id,
                                revoked,
                                now,
                                horizon=self.revocation_horizon,
                                actor_id=actor_id,
                            ),
                        ),
                        actor_id=actor_id,
                        correlation_id=current_request_id(),
                    )
                )
                if revoked:
                    await self._session_revoked(
                        uow, user, revoked, now, RevocationReason.USER_DEACTIVATED, actor_id
                    )
            await uow.commit()
        return user

    async def _session_revoked(
        self,
        uow: UnitOfWork,
        user: User,
        session_ids: Sequence[uuid.UUID],
        now: datetime,
        reason: RevocationReason,
        actor_id: uuid.UUID | None,
    ) -> None:
        await uow.outbox.add(
            session_revoked(
                user,
                session_ids,
                now,
                horizon=self.revocation_horizon,
                reason=reason,
                actor_id=actor_id,
            )
        )

    async def ensure_session_active(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, personal_token: bool = False
    ) -> None:
        """For this service's own endpoints: the database is right here, so it is asked.
        For an access token minted for a personal access token, `session_id` is that
        token's id, which must be live."""
        async with self.uow() as uow:
            if personal_token:
                live = await uow.personal_tokens.is_live(session_id, user_id, now=datetime.now(UTC))
            else:
                live = await uow.sessions.is_active(session_id, user_id)
        if not live:
            raise SessionRevokedError

    async def recently_revoked(self) -> tuple[Sequence[RevokedSession], timedelta]:
        """Sessions revoked recently enough that one of their access tokens may still be
        valid: what a verifier needs to start with an exact revocation list."""
        since = datetime.now(UTC) - self.revocation_horizon
        async with self.uow() as uow:
            sessions = await uow.sessions.revoked_since(since)
            tokens = await uow.personal_tokens.revoked_since(since)
        return [*sessions, *tokens], self.revocation_horizon

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self.uow() as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError("No such user.")
        return user

    async def lookup_users(self, user_ids: Collection[uuid.UUID]) -> Sequence[User]:
        """The users among these ids that exist, active or not: for other services (the
        notifications mail sender reads the recipient's address and whether the account is
        active, and the actor's display name). Unknown ids are left out."""
        async with self.uow() as uow:
            return await uow.users.get_many(set(user_ids))

    async def search_users(
        self, *, caller_id: uuid.UUID, q: str, limit: int, cursor: str | None
    ) -> Listing[DirectoryEntry]:
        """Active users whose email or display name starts with `q`. An admin searches
        everyone; anyone else only the users who share a project with them (and
        themself), plus the one whose email is exactly `q`. Emails are shown to admins
        and within shared projects only."""
        prefix = q.strip().casefold()
        async with self.uow() as uow:
            # The role in the database, not the token's claim (see administer_user).
            caller = await uow.users.get(caller_id)
        if caller is None:
            raise UserNotFoundError("No such user.")
        among: frozenset[uuid.UUID] | None = None
        if caller.role is not GlobalRole.ADMIN:
            shared = await self.projects.co_members(caller.id) if self.projects else frozenset()
            among = shared | {caller.id}
        async with self.uow() as uow:
            page = await uow.users.search(
                prefix,
                limit,
                cursor,
                among=among,
                exact_email=normalize_email(q) if among is not None else None,
            )
        return Listing(
            [
                DirectoryEntry(
                    id=u.id,
                    display_name=u.display_name,
                    email=u.email if among is None or u.id in among else None,
                )
                for u in page.items
            ],
            page.next_cursor,
        )

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
