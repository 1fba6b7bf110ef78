"""In-memory fakes of the auth service's ports (tests only, not in the runtime package).

`FakeAuthDatabase` is the committed state: users, sessions, refresh tokens (by their hash)
and the outbox. A `FakeUnitOfWork` works on a private copy of it taken when its block is
entered; `commit` makes the copy the database's state, and leaving the block without it
discards every change (`bugtracker_testkit.in_memory`, the core every service's fakes
share). Repositories hand out copies, as rows read from the database are.

The password hasher is the real `Argon2PasswordHasher` with the smallest parameters argon2
accepts (`fast_hasher`), wrapped to count what the use cases ask of it. Tokens are
readable strings (`FakeTokenIssuer`, `FakeRefreshTokens`); `FakeLoginThrottle` records the
calls and refuses when told to; `FakeProjectDirectory` plays the projects service.

`AuthWorld` wires the real `AuthUseCases` to them (the `world` fixture of
`tests/unit/conftest.py`). `_conforms` assigns each fake to its Protocol, so `mypy` (the
module is in its `files`) reports a fake that drifts from its port.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bugtracker_auth.application.personal_tokens import PersonalTokenUseCases
from bugtracker_auth.application.ports import (
    LoginThrottle,
    PasswordHasher,
    PersonalAccessTokenRepository,
    PersonalTokenFactory,
    ProjectDirectory,
    RefreshTokenFactory,
    SessionRepository,
    TokenIssuer,
    UnitOfWork,
    UserRepository,
)
from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    RateLimitedError,
    ThrottleUnavailableError,
)
from bugtracker_auth.domain.personal_tokens import LAST_USED_PRECISION, PersonalAccessToken
from bugtracker_auth.domain.users import (
    GlobalRole,
    RefreshTokenRecord,
    RevokedSession,
    Session,
    User,
)
from bugtracker_auth.infrastructure.keys import OpaquePersonalAccessTokens
from bugtracker_auth.infrastructure.passwords import Argon2PasswordHasher
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.pagination import Listing, decode_time_id_cursor, time_id_key
from bugtracker_shared.ports import EventSink
from bugtracker_shared.problems import UpstreamUnavailableError
from bugtracker_testkit.in_memory import (
    InMemoryOutbox,
    InMemoryOutboxDatabase,
    InMemoryUnitOfWork,
)

PASSWORD = "plum lantern orbit quietly 47"
REFRESH_TTL = timedelta(days=14)


@dataclass
class StoredRefreshToken:
    session_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass
class AuthState:
    """Everything the auth schema holds, as plain Python values."""

    users: dict[uuid.UUID, User] = field(default_factory=dict)
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    refresh_tokens: dict[bytes, StoredRefreshToken] = field(default_factory=dict)
    # Personal access tokens by the hash of their secret.
    personal_tokens: dict[bytes, PersonalAccessToken] = field(default_factory=dict)
    outbox: list[CloudEvent] = field(default_factory=list)


class FakeAuthDatabase(InMemoryOutboxDatabase[AuthState]):
    def __init__(self) -> None:
        super().__init__(AuthState())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    # What the tests read: committed state only (and `events`, `event_names`).

    def user(self, user_id: uuid.UUID) -> User:
        return copy.deepcopy(self.state.users[user_id])

    def session(self, session_id: uuid.UUID) -> Session:
        return copy.deepcopy(self.state.sessions[session_id])

    def live_sessions(self, user_id: uuid.UUID) -> set[uuid.UUID]:
        return {
            s.id
            for s in self.state.sessions.values()
            if s.user_id == user_id and s.revoked_at is None
        }


class FakeUserRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _users(self) -> dict[uuid.UUID, User]:
        return self._uow.state.users

    async def add(self, user: User) -> None:
        if any(u.email == user.email for u in self._users.values()):  # the unique index
            raise EmailTakenError("An account with this email exists already.")
        self._users[user.id] = copy.deepcopy(user)

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
        user = self._users.get(user_id)
        return copy.deepcopy(user) if user else None

    async def get_by_email(self, email: str) -> User | None:
        for user in self._users.values():
            if user.email == email:
                return copy.deepcopy(user)
        return None

    async def get_many(self, user_ids: Collection[uuid.UUID]) -> Sequence[User]:
        wanted = set(user_ids)
        return [copy.deepcopy(u) for u in self._users.values() if u.id in wanted]

    async def email_exists(self, email: str) -> bool:
        return any(u.email == email for u in self._users.values())

    async def update_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        user = self._users.get(user_id)
        if user is not None:
            user.password_hash = password_hash
            user.updated_at = datetime.now(UTC)
            user.version += 1

    async def update(
        self,
        user_id: uuid.UUID,
        *,
        display_name: str | None = None,
        role: GlobalRole | None = None,
        is_active: bool | None = None,
    ) -> User | None:
        user = self._users.get(user_id)
        if user is None:
            return None
        changes = {"display_name": display_name, "role": role, "is_active": is_active}
        changes = {name: value for name, value in changes.items() if value is not None}
        if changes:
            for name, value in changes.items():
                setattr(user, name, value)
            user.updated_at = datetime.now(UTC)
            user.version += 1
        return copy.deepcopy(user)

    async def search(
        self,
        prefix: str | None,
        limit: int,
        cursor: str | None,
        *,
        among: Collection[uuid.UUID] | None = None,
        exact_email: str | None = None,
    ) -> Listing[User]:
        def visible(user: User) -> bool:
            return among is None or user.id in among or user.email == exact_email

        def matches(user: User) -> bool:
            folded = (prefix or "").lower()
            return user.email.startswith(folded) or user.display_name.lower().startswith(folded)

        found = sorted(
            (u for u in self._users.values() if u.is_active and visible(u) and matches(u)),
            key=lambda u: (u.created_at, u.id),
        )
        if cursor:
            after = decode_time_id_cursor(cursor)
            found = [u for u in found if (u.created_at, u.id) > after]
        rows = copy.deepcopy(found[: limit + 1])
        return Listing.from_overfetch(rows, limit, lambda u: time_id_key(u.created_at, u.id))


class FakeSessionRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, session: Session, refresh_token_hash: bytes) -> None:
        state = self._uow.state
        if session.id in state.sessions or refresh_token_hash in state.refresh_tokens:
            raise ValueError("duplicate session or refresh token")  # primary keys
        state.sessions[session.id] = copy.deepcopy(session)
        state.refresh_tokens[refresh_token_hash] = StoredRefreshToken(
            session.id, session.created_at, session.expires_at
        )

    async def find_refresh_token(self, token_hash: bytes) -> RefreshTokenRecord | None:
        state = self._uow.state
        token = state.refresh_tokens.get(token_hash)
        if token is None:
            return None
        session = state.sessions[token.session_id]
        return RefreshTokenRecord(
            session_id=session.id,
            user_id=session.user_id,
            expires_at=token.expires_at,
            used_at=token.used_at,
            session_expires_at=session.expires_at,
            session_revoked_at=session.revoked_at,
            session_created_at=session.created_at,
        )

    async def rotate_refresh_token(
        self,
        old_hash: bytes,
        new_hash: bytes,
        *,
        session_id: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        state = self._uow.state
        state.refresh_tokens[old_hash].used_at = now
        state.refresh_tokens[new_hash] = StoredRefreshToken(session_id, now, expires_at)
        state.sessions[session_id].expires_at = expires_at

    async def revoke(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        revoked = []
        for session in self._uow.state.sessions.values():
            if (
                session.user_id == user_id
                and session.revoked_at is None
                and (only is None or session.id == only)
                and (keep is None or session.id != keep)
            ):
                session.revoked_at = now
                revoked.append(session.id)
        return revoked

    async def is_active(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        state = self._uow.state
        session = state.sessions.get(session_id)
        user = state.users.get(user_id)
        return (
            session is not None
            and session.user_id == user_id
            and session.revoked_at is None
            and user is not None
            and user.is_active
        )

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]:
        revoked = sorted(
            (
                s
                for s in self._uow.state.sessions.values()
                if s.revoked_at is not None and s.revoked_at >= since
            ),
            key=lambda s: s.revoked_at or since,
        )
        return [RevokedSession(s.id, s.user_id, s.revoked_at or since) for s in revoked]


class FakePersonalTokenRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _tokens(self) -> dict[bytes, PersonalAccessToken]:
        return self._uow.state.personal_tokens

    async def add(self, token: PersonalAccessToken, token_hash: bytes) -> None:
        if token_hash in self._tokens or any(t.id == token.id for t in self._tokens.values()):
            raise ValueError("duplicate token")  # the unique hash and the primary key
        self._tokens[token_hash] = copy.deepcopy(token)

    async def count_live(self, user_id: uuid.UUID, *, now: datetime) -> int:
        return sum(1 for t in self._tokens.values() if t.user_id == user_id and t.live_at(now))

    async def list_tokens(
        self, user_id: uuid.UUID, limit: int, cursor: str | None
    ) -> Listing[PersonalAccessToken]:
        found = sorted(
            (t for t in self._tokens.values() if t.user_id == user_id and t.revoked_at is None),
            key=lambda t: (t.created_at, t.id),
            reverse=True,
        )
        if cursor:
            before = decode_time_id_cursor(cursor)
            found = [t for t in found if (t.created_at, t.id) < before]
        rows = copy.deepcopy(found[: limit + 1])
        return Listing.from_overfetch(rows, limit, lambda t: time_id_key(t.created_at, t.id))

    async def find(self, token_hash: bytes) -> PersonalAccessToken | None:
        token = self._tokens.get(token_hash)
        return copy.deepcopy(token) if token else None

    async def revoke(
        self, user_id: uuid.UUID, *, now: datetime, only: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        revoked = []
        for token in self._tokens.values():
            if (
                token.user_id == user_id
                and token.revoked_at is None
                and (only is None or token.id == only)
            ):
                token.revoked_at = now
                revoked.append(token.id)
        return revoked

    async def is_live(self, token_id: uuid.UUID, user_id: uuid.UUID, *, now: datetime) -> bool:
        user = self._uow.state.users.get(user_id)
        return any(
            t.id == token_id and t.user_id == user_id and t.live_at(now)
            for t in self._tokens.values()
        ) and (user is not None and user.is_active)

    async def record_uses(self, uses: Mapping[uuid.UUID, datetime]) -> int:
        changed = 0
        for token in self._tokens.values():
            used_at = uses.get(token.id)
            if used_at is not None and (
                token.last_used_at is None or token.last_used_at < used_at - LAST_USED_PRECISION
            ):
                token.last_used_at = used_at
                changed += 1
        return changed

    async def revoked_since(self, since: datetime) -> Sequence[RevokedSession]:
        return [
            RevokedSession(t.id, t.user_id, t.revoked_at)
            for t in sorted(self._tokens.values(), key=lambda t: t.revoked_at or since)
            if t.revoked_at is not None and t.revoked_at >= since
        ]


class FakeOutbox(InMemoryOutbox[AuthState]):
    pass


class FakeUnitOfWork(InMemoryUnitOfWork[AuthState]):
    """One transaction on a `FakeAuthDatabase`."""

    users: UserRepository
    sessions: SessionRepository
    personal_tokens: PersonalAccessTokenRepository
    outbox: EventSink

    def __init__(self, database: FakeAuthDatabase) -> None:
        super().__init__(database)
        self.users = FakeUserRepository(self)
        self.sessions = FakeSessionRepository(self)
        self.personal_tokens = FakePersonalTokenRepository(self)
        self.outbox = FakeOutbox(self)


def fast_hasher() -> Argon2PasswordHasher:
    """argon2id with the smallest parameters it accepts: about a millisecond a hash."""
    return Argon2PasswordHasher(memory_kib=8, time_cost=1, parallelism=1)


class CountingHasher:
    """A real hasher, and what the use cases asked of it, in order."""

    def __init__(self, hasher: Argon2PasswordHasher) -> None:
        self.hasher = hasher
        self.calls: list[str] = []

    async def hash(self, password: str) -> str:
        self.calls.append("hash")
        return await self.hasher.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.calls.append("verify")
        return await self.hasher.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.needs_rehash(password_hash)

    async def burn(self, password: str) -> None:
        self.calls.append("burn")
        await self.hasher.burn(password)


class FakeTokenIssuer:
    """Access tokens that say whose and which session they are: `access:<user>:<sid>:<role>`,
    and `:<scope>` for a personal access token's."""

    def __init__(self, ttl_seconds: int = 600) -> None:
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        user: User,
        session: Session,
        *,
        scope: str | None = None,
        not_after: datetime | None = None,
    ) -> tuple[str, int]:
        token = f"access:{user.id}:{session.id}:{user.role.value}"
        lifetime = self.ttl_seconds
        if not_after is not None:
            lifetime = max(0, min(lifetime, int((not_after - datetime.now(UTC)).total_seconds())))
        return (token if scope is None else f"{token}:{scope}"), lifetime


class FakeRefreshTokens:
    """`refresh-1`, `refresh-2`, ...; stored as their SHA-256, as the real ones."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)

    def new(self) -> tuple[str, bytes]:
        token = f"refresh-{next(self._numbers)}"
        return token, self.hash(token)

    def hash(self, token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()


class FakeLoginThrottle:
    """Records (what, client_ip, email) of every call; `refuse` makes `check` raise,
    `unavailable` makes every call raise as an unreachable store does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []
        self.refuse = False
        self.unavailable = False

    def _call(self, what: str, client_ip: str | None, email: str) -> None:
        if self.unavailable:
            raise ThrottleUnavailableError
        self.calls.append((what, client_ip, email))

    async def check(self, client_ip: str | None, email: str) -> None:
        self._call("check", client_ip, email)
        if self.refuse:
            raise RateLimitedError(30)

    async def failed(self, client_ip: str | None, email: str) -> None:
        self._call("failed", client_ip, email)

    async def succeeded(self, client_ip: str | None, email: str) -> None:
        self._call("succeeded", client_ip, email)


class FakeProjectDirectory:
    """Who shares a project with whom; `unavailable` plays projects being down."""

    def __init__(self) -> None:
        self.shared: dict[uuid.UUID, set[uuid.UUID]] = {}
        self.unavailable = False

    def share(self, *users: uuid.UUID) -> None:
        """The users are in one project together."""
        for user in users:
            self.shared.setdefault(user, set()).update(u for u in users if u != user)

    async def co_members(self, user_id: uuid.UUID) -> frozenset[uuid.UUID]:
        if self.unavailable:
            raise UpstreamUnavailableError("projects")
        return frozenset(self.shared.get(user_id, set()))


@dataclass
class AuthWorld:
    """The real AuthUseCases on the fakes, and helpers to set up a scene."""

    database: FakeAuthDatabase = field(default_factory=FakeAuthDatabase)
    hasher: CountingHasher = field(default_factory=lambda: CountingHasher(fast_hasher()))
    refresh_tokens: FakeRefreshTokens = field(default_factory=FakeRefreshTokens)
    throttle: FakeLoginThrottle = field(default_factory=FakeLoginThrottle)
    projects: FakeProjectDirectory = field(default_factory=FakeProjectDirectory)
    common_passwords: frozenset[str] = frozenset({"correct horse battery staple"})
    auth: AuthUseCases = field(init=False)
    personal_tokens: PersonalTokenUseCases = field(init=False)

    def __post_init__(self) -> None:
        self.auth = AuthUseCases(
            uow=self.database.unit_of_work,
            hasher=self.hasher,
            tokens=FakeTokenIssuer(),
            refresh_tokens=self.refresh_tokens,
            refresh_ttl=REFRESH_TTL,
            common_passwords=self.common_passwords,
            throttle=self.throttle,
            projects=self.projects,
        )
        self.personal_tokens = PersonalTokenUseCases(
            uow=self.database.unit_of_work,
            tokens=FakeTokenIssuer(),
            secrets=OpaquePersonalAccessTokens(),
            revocation_horizon=self.auth.revocation_horizon,
        )

    def use_cases(self, **changes: Any) -> AuthUseCases:
        """The use cases on this world's fakes, with some settings changed."""
        return dataclasses.replace(self.auth, **changes)

    async def user(
        self, name: str = "ann", *, role: GlobalRole = GlobalRole.MEMBER, password: str = PASSWORD
    ) -> User:
        """A registered user `<name>@example.com`, display name `<Name>`."""
        return await self.auth.register(
            email=f"{name}@example.com",
            password=password,
            display_name=name.title(),
            role=role,
            self_service=role is GlobalRole.MEMBER,
        )

    def expire_session(self, session_id: uuid.UUID, *, ago: timedelta) -> None:
        """Move a session and its tokens into the past by `ago` (created, expiring)."""
        session = self.database.state.sessions[session_id]
        session.created_at -= ago
        session.expires_at -= ago
        for token in self.database.state.refresh_tokens.values():
            if token.session_id == session_id:
                token.created_at -= ago
                token.expires_at -= ago


def session_of(access_token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(user id, session id) of a `FakeTokenIssuer` access token."""
    _, user_id, session_id, *_ = access_token.split(":")
    return uuid.UUID(user_id), uuid.UUID(session_id)


def _conforms(database: FakeAuthDatabase) -> None:
    """Never called: mypy checks that each fake satisfies the Protocol it plays."""
    uow: UnitOfWork = FakeUnitOfWork(database)
    make_uow: Callable[[], UnitOfWork] = database.unit_of_work
    fake = FakeUnitOfWork(database)
    repositories: tuple[
        UserRepository, SessionRepository, PersonalAccessTokenRepository, EventSink
    ] = (
        FakeUserRepository(fake),
        FakeSessionRepository(fake),
        FakePersonalTokenRepository(fake),
        FakeOutbox(fake),
    )
    hasher: PasswordHasher = CountingHasher(fast_hasher())
    tokens: TokenIssuer = FakeTokenIssuer()
    refresh: RefreshTokenFactory = FakeRefreshTokens()
    throttle: LoginThrottle = FakeLoginThrottle()
    projects: ProjectDirectory = FakeProjectDirectory()
    secrets: PersonalTokenFactory = OpaquePersonalAccessTokens()
    del uow, make_uow, repositories, hasher, tokens, refresh, throttle, projects, secrets
