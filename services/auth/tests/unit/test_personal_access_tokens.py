"""Personal access tokens through the real use cases on in-memory fakes (docs/adr/0042)."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_auth.domain.errors import (
    InsufficientScopeError,
    InvalidPersonalAccessTokenError,
    PersonalAccessTokenNotFoundError,
    SessionRevokedError,
    TooManyTokensError,
)
from bugtracker_auth.domain.personal_tokens import (
    CreatedToken,
    TokenScope,
    canonical_scopes,
)
from bugtracker_auth.domain.users import GlobalRole, User
from bugtracker_auth.infrastructure.keys import OpaquePersonalAccessTokens

from services.auth.tests.unit.fakes import PASSWORD, AuthWorld

READ = (TokenScope.READ,)
READ_WRITE = (TokenScope.READ, TokenScope.WRITE)


async def create(
    world: AuthWorld,
    user: User,
    *,
    scopes: tuple[TokenScope, ...] = READ,
    days: int = 30,
    name: str = "script",
) -> CreatedToken:
    return await world.personal_tokens.create(
        user_id=user.id,
        via_personal_token=False,
        name=name,
        scopes=scopes,
        lifetime=timedelta(days=days),
    )


def test_a_secret_is_btp_and_256_bits_in_base62_and_stored_as_its_sha256() -> None:
    factory = OpaquePersonalAccessTokens()
    secrets = {factory.new() for _ in range(50)}
    for secret, stored in secrets:
        assert re.fullmatch(r"btp_[0-9A-Za-z]{43}", secret)
        assert stored == hashlib.sha256(secret.encode()).digest()
    assert len({secret for secret, _ in secrets}) == 50


def test_write_implies_read_and_scopes_have_one_order() -> None:
    assert canonical_scopes(["write", "read"]) == READ_WRITE
    assert canonical_scopes(["write"]) == READ_WRITE
    assert canonical_scopes(["read"]) == READ


async def test_create_stores_only_the_hash_and_lists_without_the_secret(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann, scopes=READ_WRITE, days=7)

    stored = world.database.state.personal_tokens
    assert list(stored) == [hashlib.sha256(created.secret.encode()).digest()]
    token = next(iter(stored.values()))
    assert created.secret not in repr(token)
    assert token.scopes == READ_WRITE
    assert token.expires_at - token.created_at == timedelta(days=7)
    page = await world.personal_tokens.list_tokens(user_id=ann.id, limit=20, cursor=None)
    assert [t.id for t in page.items] == [created.token.id]


async def test_a_token_cannot_create_tokens_or_change_the_password(world: AuthWorld) -> None:
    ann = await world.user("ann")
    with pytest.raises(InsufficientScopeError):
        await world.personal_tokens.create(
            user_id=ann.id,
            via_personal_token=True,
            name="x",
            scopes=READ,
            lifetime=timedelta(days=1),
        )
    with pytest.raises(InsufficientScopeError):
        await world.auth.change_password(
            user_id=ann.id,
            session_id=uuid.uuid4(),
            current_password=PASSWORD,
            new_password="violet harbour seven kites 12",
            via_personal_token=True,
        )
    assert world.database.state.personal_tokens == {}
    assert world.hasher.calls == ["hash"]  # registration only: no password was checked


async def test_the_number_of_live_tokens_is_capped(world: AuthWorld) -> None:
    cases = world.personal_tokens
    cases.max_live_tokens = 2
    ann = await world.user("ann")
    first = await create(world, ann)
    await create(world, ann)
    with pytest.raises(TooManyTokensError):
        await create(world, ann)
    await cases.revoke(user_id=ann.id, token_id=first.token.id)
    await create(world, ann)  # a revoked token does not count


async def test_the_list_is_newest_first_and_paginated(world: AuthWorld) -> None:
    ann = await world.user("ann")
    bob = await world.user("bob")
    made = [await create(world, ann, name=f"t{i}") for i in range(5)]
    await create(world, bob)
    await world.personal_tokens.revoke(user_id=ann.id, token_id=made[2].token.id)

    first = await world.personal_tokens.list_tokens(user_id=ann.id, limit=2, cursor=None)
    second = await world.personal_tokens.list_tokens(
        user_id=ann.id, limit=2, cursor=first.next_cursor
    )

    assert [t.name for t in first.items + second.items] == ["t4", "t3", "t1", "t0"]
    assert second.next_cursor is None


async def test_revoking_writes_session_revoked_with_the_token_id(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann)

    await world.personal_tokens.revoke(user_id=ann.id, token_id=created.token.id)

    event = world.database.events[-1]
    assert event.name == "auth.session_revoked"
    assert event.data["session_ids"] == [str(created.token.id)]
    assert event.data["reason"] == "token_revoked"
    revoked_at = datetime.fromisoformat(event.data["revoked_at"])
    forget_after = datetime.fromisoformat(event.data["forget_after"])
    assert forget_after - revoked_at == world.auth.revocation_horizon
    with pytest.raises(InvalidPersonalAccessTokenError):
        await world.personal_tokens.exchange(secret=created.secret)


async def test_only_the_owner_revokes_and_only_once(world: AuthWorld) -> None:
    ann = await world.user("ann")
    bob = await world.user("bob")
    created = await create(world, ann)
    with pytest.raises(PersonalAccessTokenNotFoundError):
        await world.personal_tokens.revoke(user_id=bob.id, token_id=created.token.id)
    await world.personal_tokens.revoke(user_id=ann.id, token_id=created.token.id)
    before = len(world.database.events)
    with pytest.raises(PersonalAccessTokenNotFoundError):
        await world.personal_tokens.revoke(user_id=ann.id, token_id=created.token.id)
    assert len(world.database.events) == before


async def test_exchange_mints_a_scoped_token_for_the_owner_and_notes_the_use(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann", role=GlobalRole.ADMIN)
    created = await create(world, ann, scopes=READ_WRITE)

    exchanged = await world.personal_tokens.exchange(secret=created.secret)

    assert exchanged.access_token == f"access:{ann.id}:{created.token.id}:admin:read write"
    assert exchanged.expires_in == 600
    (stored,) = world.database.state.personal_tokens.values()
    assert stored.last_used_at is not None
    first_use = stored.last_used_at
    commits = world.database.commits
    await world.personal_tokens.exchange(secret=created.secret)
    assert world.database.commits == commits  # within a minute: nothing written
    assert stored.last_used_at == first_use


async def test_exchange_never_outlives_the_token(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann)
    (stored,) = world.database.state.personal_tokens.values()
    stored.expires_at = datetime.now(UTC) + timedelta(seconds=120)

    exchanged = await world.personal_tokens.exchange(secret=created.secret)

    assert 100 <= exchanged.expires_in <= 120


@pytest.mark.parametrize("secret", ["", "btp_unknown", "not-a-token", "access:x"])
async def test_an_unknown_secret_is_refused(world: AuthWorld, secret: str) -> None:
    with pytest.raises(InvalidPersonalAccessTokenError):
        await world.personal_tokens.exchange(secret=secret)


async def test_an_expired_token_is_refused(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann)
    (stored,) = world.database.state.personal_tokens.values()
    stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(InvalidPersonalAccessTokenError):
        await world.personal_tokens.exchange(secret=created.secret)


async def test_deactivation_revokes_the_users_tokens_with_its_sessions(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    tokens = await world.auth.login(email=ann.email, password=PASSWORD)
    created = await create(world, ann)

    await world.auth.administer_user(actor_id=admin.id, user_id=ann.id, role=None, is_active=False)

    revoked = next(e for e in world.database.events if e.name == "auth.session_revoked")
    deactivated = next(e for e in world.database.events if e.name == "user.deactivated")
    token_id = str(created.token.id)
    assert token_id in revoked.data["session_ids"]
    assert token_id in deactivated.data["session_ids"]
    assert len(revoked.data["session_ids"]) == 2
    with pytest.raises(InvalidPersonalAccessTokenError):
        await world.personal_tokens.exchange(secret=created.secret)
    seed, _ = await world.auth.recently_revoked()
    assert created.token.id in {s.session_id for s in seed}
    assert tokens.access_token


async def test_auths_own_check_accepts_a_live_token_id_as_the_session(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann)
    check = world.auth.ensure_session_active

    await check(user_id=ann.id, session_id=created.token.id, personal_token=True)
    with pytest.raises(SessionRevokedError):  # a token id is not a session
        await check(user_id=ann.id, session_id=created.token.id)
    await world.personal_tokens.revoke(user_id=ann.id, token_id=created.token.id)
    with pytest.raises(SessionRevokedError):
        await check(user_id=ann.id, session_id=created.token.id, personal_token=True)


async def test_reported_uses_are_written_only_when_news(world: AuthWorld) -> None:
    ann = await world.user("ann")
    created = await create(world, ann)
    now = datetime.now(UTC)
    cases = world.personal_tokens

    assert await cases.record_uses({created.token.id: now}) == 1
    assert await cases.record_uses({created.token.id: now + timedelta(seconds=30)}) == 0
    assert await cases.record_uses({created.token.id: now + timedelta(seconds=61)}) == 1
    assert await cases.record_uses({uuid.uuid4(): now}) == 0
    assert await cases.record_uses({}) == 0
