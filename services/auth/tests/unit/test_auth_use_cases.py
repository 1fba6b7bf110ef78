"""The auth application layer through in-memory fakes of its ports (fakes.py): the real
use cases, domain rules and argon2 (with tiny parameters); no database, no broker, no HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RateLimitedError,
    RegistrationClosedError,
    SessionRevokedError,
    ThrottleUnavailableError,
    UserNotFoundError,
    WeakPasswordError,
    WrongCurrentPasswordError,
)
from bugtracker_auth.domain.users import GlobalRole, IssuedTokens, User
from bugtracker_auth.infrastructure.passwords import Argon2PasswordHasher
from bugtracker_shared.problems import UpstreamUnavailableError

from services.auth.tests.unit.fakes import (
    PASSWORD,
    REFRESH_TTL,
    AuthWorld,
    CountingHasher,
    FakeOutbox,
    session_of,
)

NEW_PASSWORD = "violet harbour seven kites 12"


async def login(world: AuthWorld, user: User, password: str = PASSWORD) -> IssuedTokens:
    return await world.auth.login(email=user.email, password=password, client_ip="203.0.113.9")


# -- register ----------------------------------------------------------------------------


async def test_register_stores_a_normalized_user_with_a_hash_and_emits_registered(
    world: AuthWorld,
) -> None:
    user = await world.auth.register(
        email="  Ann@Example.COM ", password=PASSWORD, display_name="  Ann  "
    )
    stored = world.database.user(user.id)
    assert (stored.email, stored.display_name, stored.role, stored.is_active) == (
        "ann@example.com",
        "Ann",
        GlobalRole.MEMBER,
        True,
    )
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    (event,) = world.database.events
    assert event.name == "user.registered"
    assert event.subject == str(user.id)
    assert event.actorid == str(user.id)  # self-service: the user registered themself
    assert event.data["email"] == "ann@example.com"
    assert "password_hash" not in event.data
    assert world.database.commits == 1


async def test_a_taken_email_is_refused_whatever_its_case_and_nothing_is_written(
    world: AuthWorld,
) -> None:
    await world.user("ann")
    before = world.database.snapshot()
    with pytest.raises(EmailTakenError):
        await world.auth.register(email="ANN@example.com", password=PASSWORD, display_name="A")
    assert world.database.state == before


@pytest.mark.parametrize(
    "password",
    ["short password", "correct horse battery staple", "ann@example.com", "Ann Example"],
)
async def test_a_weak_password_is_refused_before_anything_is_hashed_or_written(
    world: AuthWorld, password: str
) -> None:
    with pytest.raises(WeakPasswordError):
        await world.auth.register(
            email="ann@example.com", password=password, display_name="Ann Example"
        )
    assert world.database.state.users == {}
    assert world.hasher.calls == []


async def test_closed_registration_refuses_self_service_but_not_the_admin_bootstrap(
    world: AuthWorld,
) -> None:
    closed = world.use_cases(registration_open=False)
    with pytest.raises(RegistrationClosedError):
        await closed.register(email="ann@example.com", password=PASSWORD, display_name="Ann")
    admin, created = await closed.ensure_admin(email="root@example.com", password=PASSWORD)
    assert created
    assert (admin.role, admin.display_name) == (GlobalRole.ADMIN, "Administrator")
    (event,) = world.database.events
    assert event.actorid is None  # nobody registered themself


async def test_ensure_admin_is_idempotent(world: AuthWorld) -> None:
    first, created = await world.auth.ensure_admin(email="root@example.com", password=PASSWORD)
    again, created_again = await world.auth.ensure_admin(
        email="ROOT@example.com", password="another long password 99"
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert len(world.database.state.users) == 1


# -- login -------------------------------------------------------------------------------


async def test_login_opens_a_session_and_issues_its_tokens(world: AuthWorld) -> None:
    ann = await world.user("ann")
    tokens = await login(world, ann)
    user_id, session_id = session_of(tokens.access_token)
    assert user_id == ann.id
    assert world.database.live_sessions(ann.id) == {session_id}
    assert tokens.refresh_token == "refresh-1"
    assert tokens.expires_in == 600
    assert tokens.refresh_expires_in == pytest.approx(REFRESH_TTL.total_seconds(), abs=2)
    assert world.throttle.calls == [
        ("check", "203.0.113.9", "ann@example.com"),
        ("succeeded", "203.0.113.9", "ann@example.com"),
    ]


async def test_login_matches_the_email_case_insensitively(world: AuthWorld) -> None:
    ann = await world.user("ann")
    tokens = await world.auth.login(email=" ANN@Example.com", password=PASSWORD)
    assert session_of(tokens.access_token)[0] == ann.id


async def test_a_session_never_outlives_the_absolute_maximum(world: AuthWorld) -> None:
    ann = await world.user("ann")
    short = world.use_cases(session_max_lifetime=timedelta(days=1))
    tokens = await short.login(email=ann.email, password=PASSWORD)
    session = world.database.session(session_of(tokens.access_token)[1])
    assert session.expires_at - session.created_at == timedelta(days=1)
    assert tokens.refresh_expires_in == pytest.approx(86400, abs=2)


async def test_a_wrong_password_fails_counts_a_failure_and_opens_no_session(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    world.hasher.calls.clear()
    with pytest.raises(InvalidCredentialsError):
        await login(world, ann, "not the password at all 1")
    assert world.database.state.sessions == {}
    assert world.hasher.calls == ["verify"]
    assert world.throttle.calls[-1] == ("failed", "203.0.113.9", "ann@example.com")
    assert ("succeeded", "203.0.113.9", "ann@example.com") not in world.throttle.calls


async def test_an_unknown_email_spends_one_verification_and_looks_like_a_wrong_password(
    world: AuthWorld,
) -> None:
    with pytest.raises(InvalidCredentialsError) as unknown:
        await world.auth.login(email="nobody@example.com", password=PASSWORD, client_ip="x")
    assert world.hasher.calls == ["burn"]
    assert world.throttle.calls == [
        ("check", "x", "nobody@example.com"),
        ("failed", "x", "nobody@example.com"),
    ]
    ann = await world.user("ann")
    with pytest.raises(InvalidCredentialsError) as wrong:
        await login(world, ann, "not the password at all 1")
    assert str(unknown.value) == str(wrong.value)


async def test_a_deactivated_user_cannot_log_in_even_with_the_right_password(
    world: AuthWorld,
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    await world.auth.administer_user(actor_id=admin.id, user_id=ann.id, role=None, is_active=False)
    with pytest.raises(InvalidCredentialsError):
        await login(world, ann)
    assert world.database.live_sessions(ann.id) == set()
    assert world.throttle.calls[-1] == ("failed", "203.0.113.9", "ann@example.com")


async def test_a_throttled_client_is_refused_before_the_password_is_checked(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    world.hasher.calls.clear()
    world.throttle.refuse = True
    with pytest.raises(RateLimitedError) as refused:
        await login(world, ann)  # the right password: still refused, nothing verified
    assert refused.value.headers == {"Retry-After": "30"}
    assert world.hasher.calls == []
    assert world.database.state.sessions == {}


async def test_without_the_throttle_store_no_password_is_checked(world: AuthWorld) -> None:
    # Fails closed (ADR 0037): no guess goes uncounted, the right password included.
    ann = await world.user("ann")
    world.hasher.calls.clear()
    world.throttle.unavailable = True
    with pytest.raises(ThrottleUnavailableError) as refused:
        await login(world, ann)
    assert refused.value.headers == {"Retry-After": "5"}
    with pytest.raises(ThrottleUnavailableError):
        await world.auth.change_password(
            user_id=ann.id,
            session_id=uuid.uuid4(),
            current_password=PASSWORD,
            new_password="another long password 99",
        )
    assert world.hasher.calls == []
    assert world.database.state.sessions == {}


async def test_without_a_throttle_failures_lock_nobody_out(world: AuthWorld) -> None:
    unthrottled = world.use_cases(throttle=None)
    ann = await world.user("ann")
    for _ in range(20):
        with pytest.raises(InvalidCredentialsError):
            await unthrottled.login(email=ann.email, password="wrong wrong wrong 1")
    tokens = await unthrottled.login(email=ann.email, password=PASSWORD)
    assert session_of(tokens.access_token)[0] == ann.id


async def test_a_hash_with_outdated_parameters_is_upgraded_at_login(world: AuthWorld) -> None:
    old = CountingHasher(Argon2PasswordHasher(memory_kib=16, time_cost=1, parallelism=1))
    ann = await world.use_cases(hasher=old).register(
        email="ann@example.com", password=PASSWORD, display_name="Ann"
    )
    assert "m=16," in world.database.user(ann.id).password_hash
    await login(world, ann)
    upgraded = world.database.user(ann.id)
    assert "m=8," in upgraded.password_hash
    assert upgraded.version == ann.version + 1
    await login(world, ann)  # the new hash verifies, and is not rehashed again
    assert world.database.user(ann.id).version == upgraded.version


# -- refresh -----------------------------------------------------------------------------


async def test_refresh_spends_the_token_for_a_new_pair_in_the_same_session(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    first = await login(world, ann)
    second = await world.auth.refresh(refresh_token=first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert session_of(second.access_token) == session_of(first.access_token)
    third = await world.auth.refresh(refresh_token=second.refresh_token)
    assert session_of(third.access_token) == session_of(first.access_token)
    assert len(world.database.live_sessions(ann.id)) == 1


async def test_a_spent_refresh_token_presented_again_revokes_the_whole_session(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    stolen = await login(world, ann)
    _, session_id = session_of(stolen.access_token)
    other = await login(world, ann)  # another device: not affected
    rotated = await world.auth.refresh(refresh_token=stolen.refresh_token)
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=stolen.refresh_token)
    assert world.database.session(session_id).revoked_at is not None
    assert world.database.live_sessions(ann.id) == {session_of(other.access_token)[1]}
    # The revocation is committed although the call failed, and announced.
    (event,) = [e for e in world.database.events if e.name == "auth.session_revoked"]
    assert event.data["reason"] == "refresh_token_reuse"
    assert event.data["session_ids"] == [str(session_id)]
    assert event.actorid is None
    # The legitimate holder's newer token dies with the session.
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=rotated.refresh_token)
    # Reuse on an already revoked session announces nothing more.
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=stolen.refresh_token)
    assert world.database.event_names().count("auth.session_revoked") == 1


async def test_an_unknown_refresh_token_is_refused_and_changes_nothing(world: AuthWorld) -> None:
    ann = await world.user("ann")
    await login(world, ann)
    before = world.database.snapshot()
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token="refresh-999")
    assert world.database.state == before


async def test_an_expired_refresh_token_is_refused(world: AuthWorld) -> None:
    ann = await world.user("ann")
    tokens = await login(world, ann)
    world.expire_session(session_of(tokens.access_token)[1], ago=REFRESH_TTL + timedelta(1))
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=tokens.refresh_token)


async def test_refreshing_never_extends_a_session_past_its_absolute_lifetime(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    tokens = await login(world, ann)
    _, session_id = session_of(tokens.access_token)
    session_row = world.database.state.sessions[session_id]
    session_row.created_at -= timedelta(days=29)  # logged in 29 days ago
    refreshed = await world.auth.refresh(refresh_token=tokens.refresh_token)
    session = world.database.session(session_id)
    assert session.expires_at == session.created_at + timedelta(days=30)
    assert refreshed.refresh_expires_in == pytest.approx(86400, abs=2)
    world.database.state.sessions[session_id].created_at -= timedelta(days=1, seconds=1)
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=refreshed.refresh_token)


async def test_a_deactivated_users_refresh_token_is_refused(world: AuthWorld) -> None:
    ann = await world.user("ann")
    tokens = await login(world, ann)
    ann_row = world.database.state.users[ann.id]
    ann_row.is_active = False  # as if deactivated behind the sessions' back
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=tokens.refresh_token)


# -- logout, sessions, password change ---------------------------------------------------


async def test_logout_revokes_only_that_session_and_announces_it(world: AuthWorld) -> None:
    ann = await world.user("ann")
    phone = await login(world, ann)
    laptop = await login(world, ann)
    _, phone_session = session_of(phone.access_token)
    await world.auth.logout(user_id=ann.id, session_id=phone_session)
    assert world.database.live_sessions(ann.id) == {session_of(laptop.access_token)[1]}
    with pytest.raises(SessionRevokedError):
        await world.auth.ensure_session_active(user_id=ann.id, session_id=phone_session)
    await world.auth.ensure_session_active(
        user_id=ann.id, session_id=session_of(laptop.access_token)[1]
    )
    with pytest.raises(InvalidRefreshTokenError):
        await world.auth.refresh(refresh_token=phone.refresh_token)
    (event,) = [e for e in world.database.events if e.name == "auth.session_revoked"]
    assert (event.data["reason"], event.data["session_ids"]) == ("logout", [str(phone_session)])
    assert event.actorid == str(ann.id)
    revoked_at = datetime.fromisoformat(event.data["revoked_at"])
    assert datetime.fromisoformat(event.data["forget_after"]) - revoked_at == timedelta(
        minutes=10, seconds=5
    )


async def test_logging_out_twice_announces_once(world: AuthWorld) -> None:
    ann = await world.user("ann")
    _, session_id = session_of((await login(world, ann)).access_token)
    await world.auth.logout(user_id=ann.id, session_id=session_id)
    await world.auth.logout(user_id=ann.id, session_id=session_id)
    await world.auth.logout(user_id=uuid.uuid4(), session_id=session_id)  # unknown user
    assert world.database.event_names().count("auth.session_revoked") == 1


async def test_a_session_belongs_to_its_user_only(world: AuthWorld) -> None:
    ann, bob = await world.user("ann"), await world.user("bob")
    _, session_id = session_of((await login(world, ann)).access_token)
    with pytest.raises(SessionRevokedError):
        await world.auth.ensure_session_active(user_id=bob.id, session_id=session_id)


async def test_recently_revoked_lists_sessions_within_the_horizon_only(world: AuthWorld) -> None:
    ann = await world.user("ann")
    old, recent = await login(world, ann), await login(world, ann)
    _, old_session = session_of(old.access_token)
    _, recent_session = session_of(recent.access_token)
    await world.auth.logout(user_id=ann.id, session_id=old_session)
    await world.auth.logout(user_id=ann.id, session_id=recent_session)
    world.database.state.sessions[old_session].revoked_at = datetime.now(UTC) - timedelta(
        minutes=11
    )
    revoked, horizon = await world.auth.recently_revoked()
    assert horizon == timedelta(minutes=10, seconds=5)
    assert [(r.session_id, r.user_id) for r in revoked] == [(recent_session, ann.id)]


async def test_changing_the_password_ends_every_other_session(world: AuthWorld) -> None:
    ann = await world.user("ann")
    current, other = await login(world, ann), await login(world, ann)
    _, current_session = session_of(current.access_token)
    await world.auth.change_password(
        user_id=ann.id,
        session_id=current_session,
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
    )
    assert world.database.live_sessions(ann.id) == {current_session}
    event = world.database.events[-1]
    assert event.name == "auth.session_revoked"
    assert event.data["reason"] == "password_changed"
    assert event.data["session_ids"] == [str(session_of(other.access_token)[1])]
    with pytest.raises(InvalidCredentialsError):
        await login(world, ann)
    await login(world, ann, NEW_PASSWORD)


async def test_a_wrong_current_password_is_throttled_and_changes_nothing(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    _, session_id = session_of((await login(world, ann)).access_token)
    before = world.database.snapshot()
    world.throttle.calls.clear()
    with pytest.raises(WrongCurrentPasswordError):
        await world.auth.change_password(
            user_id=ann.id,
            session_id=session_id,
            current_password="a guess at the password 1",
            new_password=NEW_PASSWORD,
            client_ip="203.0.113.9",
        )
    assert world.database.state == before
    assert world.throttle.calls == [
        ("check", "203.0.113.9", "ann@example.com"),
        ("failed", "203.0.113.9", "ann@example.com"),
    ]
    world.throttle.refuse = True
    with pytest.raises(RateLimitedError):  # even the right password, while throttled
        await world.auth.change_password(
            user_id=ann.id,
            session_id=session_id,
            current_password=PASSWORD,
            new_password=NEW_PASSWORD,
        )
    assert world.database.state == before


async def test_a_weak_new_password_is_refused_and_the_old_one_stays(world: AuthWorld) -> None:
    ann = await world.user("ann")
    _, session_id = session_of((await login(world, ann)).access_token)
    with pytest.raises(WeakPasswordError):
        await world.auth.change_password(
            user_id=ann.id,
            session_id=session_id,
            current_password=PASSWORD,
            new_password="ann@example.com",
        )
    await login(world, ann)


# -- profile and administration ----------------------------------------------------------


async def test_update_profile_trims_the_name_and_bumps_the_version(world: AuthWorld) -> None:
    ann = await world.user("ann")
    updated = await world.auth.update_profile(user_id=ann.id, display_name="  Ann B. ")
    assert (updated.display_name, updated.version) == ("Ann B.", ann.version + 1)
    assert world.database.user(ann.id).display_name == "Ann B."
    with pytest.raises(UserNotFoundError):
        await world.auth.update_profile(user_id=uuid.uuid4(), display_name="x")


async def test_an_admin_deactivates_a_user_ending_every_session_with_two_events(
    world: AuthWorld,
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    sessions = {session_of((await login(world, ann)).access_token)[1] for _ in range(2)}
    user = await world.auth.administer_user(
        actor_id=admin.id, user_id=ann.id, role=None, is_active=False
    )
    assert not user.is_active
    assert not world.database.user(ann.id).is_active
    assert world.database.live_sessions(ann.id) == set()
    deactivated, revoked = world.database.events[-2:]
    assert (deactivated.name, revoked.name) == ("user.deactivated", "auth.session_revoked")
    assert deactivated.actorid == revoked.actorid == str(admin.id)
    assert set(deactivated.data["session_ids"]) == {str(s) for s in sessions}
    assert revoked.data["reason"] == "user_deactivated"
    assert deactivated.sequence == user.version


async def test_deactivating_a_user_without_sessions_emits_only_deactivated(
    world: AuthWorld,
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    await world.auth.administer_user(actor_id=admin.id, user_id=ann.id, role=None, is_active=False)
    assert world.database.event_names()[-1] == "user.deactivated"
    assert "auth.session_revoked" not in world.database.event_names()
    # Deactivating again is no news.
    await world.auth.administer_user(actor_id=admin.id, user_id=ann.id, role=None, is_active=False)
    assert world.database.event_names().count("user.deactivated") == 1


async def test_an_admin_promotes_and_reactivates(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    await world.auth.administer_user(actor_id=admin.id, user_id=ann.id, role=None, is_active=False)
    user = await world.auth.administer_user(
        actor_id=admin.id, user_id=ann.id, role=GlobalRole.ADMIN, is_active=True
    )
    assert (user.role, user.is_active) == (GlobalRole.ADMIN, True)
    await login(world, ann)


async def test_only_an_active_admin_in_the_database_may_administer(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann, bob = await world.user("ann"), await world.user("bob")
    before = world.database.snapshot()
    for actor in (ann.id, uuid.uuid4()):
        with pytest.raises(ForbiddenError):
            await world.auth.administer_user(
                actor_id=actor, user_id=bob.id, role=GlobalRole.ADMIN, is_active=None
            )
    assert world.database.state == before
    # A demoted admin's token may still say admin; the database decides.
    other_admin = await world.user("boss", role=GlobalRole.ADMIN)
    await world.auth.administer_user(
        actor_id=admin.id, user_id=other_admin.id, role=GlobalRole.MEMBER, is_active=None
    )
    with pytest.raises(ForbiddenError):
        await world.auth.administer_user(
            actor_id=other_admin.id, user_id=bob.id, role=None, is_active=False
        )
    assert world.database.user(bob.id).is_active


@pytest.mark.parametrize(
    ("role", "is_active"), [(GlobalRole.MEMBER, None), (None, False)], ids=["demote", "deactivate"]
)
async def test_an_admin_cannot_demote_or_deactivate_themself(
    world: AuthWorld, role: GlobalRole | None, is_active: bool | None
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    with pytest.raises(ForbiddenError):
        await world.auth.administer_user(
            actor_id=admin.id, user_id=admin.id, role=role, is_active=is_active
        )
    assert world.database.user(admin.id).role is GlobalRole.ADMIN
    assert world.database.user(admin.id).is_active


async def test_administering_an_unknown_user_is_not_found(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    with pytest.raises(UserNotFoundError):
        await world.auth.administer_user(
            actor_id=admin.id, user_id=uuid.uuid4(), role=None, is_active=False
        )


async def test_a_failing_outbox_leaves_the_deactivation_undone(
    world: AuthWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    await login(world, ann)
    before = world.database.snapshot()

    async def broken(self: FakeOutbox, event: object) -> None:
        raise RuntimeError("outbox down")

    monkeypatch.setattr(FakeOutbox, "add", broken)
    with pytest.raises(RuntimeError, match="outbox down"):
        await world.auth.administer_user(
            actor_id=admin.id, user_id=ann.id, role=None, is_active=False
        )
    assert world.database.state == before


# -- the user directory ------------------------------------------------------------------


async def test_get_user_finds_users_and_refuses_unknown_ids(world: AuthWorld) -> None:
    ann = await world.user("ann")
    assert (await world.auth.get_user(ann.id)).email == "ann@example.com"
    with pytest.raises(UserNotFoundError):
        await world.auth.get_user(uuid.uuid4())


async def test_members_search_the_users_they_share_a_project_with(world: AuthWorld) -> None:
    ann, anna, andy = await world.user("ann"), await world.user("anna"), await world.user("andy")
    world.projects.share(ann.id, anna.id)
    page = await world.auth.search_users(caller_id=ann.id, q="an", limit=10, cursor=None)
    assert {(e.id, e.email) for e in page.items} == {
        (ann.id, "ann@example.com"),
        (anna.id, "anna@example.com"),
    }
    # Anyone is found by their exact email, but their email is not shown.
    exact = await world.auth.search_users(
        caller_id=ann.id, q="Andy@Example.com", limit=10, cursor=None
    )
    assert [(e.id, e.display_name, e.email) for e in exact.items] == [(andy.id, "Andy", None)]


async def test_admins_search_everyone_page_by_page_and_inactive_users_are_hidden(
    world: AuthWorld,
) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    users = [await world.user(f"user{n}") for n in range(5)]
    await world.auth.administer_user(
        actor_id=admin.id, user_id=users[2].id, role=None, is_active=False
    )
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = await world.auth.search_users(caller_id=admin.id, q="user", limit=2, cursor=cursor)
        assert all(entry.email is not None for entry in page.items)
        seen += [entry.id for entry in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [u.id for u in users if u.id != users[2].id]


async def test_searching_needs_projects_for_members_but_not_for_admins(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    world.projects.unavailable = True
    with pytest.raises(UpstreamUnavailableError):
        await world.auth.search_users(caller_id=ann.id, q="", limit=10, cursor=None)
    page = await world.auth.search_users(caller_id=admin.id, q="", limit=10, cursor=None)
    assert {e.id for e in page.items} == {admin.id, ann.id}
    with pytest.raises(UserNotFoundError):
        await world.auth.search_users(caller_id=uuid.uuid4(), q="", limit=10, cursor=None)


async def test_without_a_project_directory_a_member_finds_only_themself(
    world: AuthWorld,
) -> None:
    ann = await world.user("ann")
    await world.user("anna")
    alone = world.use_cases(projects=None)
    page = await alone.search_users(caller_id=ann.id, q="an", limit=10, cursor=None)
    assert [e.id for e in page.items] == [ann.id]


# -- lookup (POST /internal/users/lookup) ------------------------------------------------


async def test_lookup_answers_the_users_that_exist_active_or_not(world: AuthWorld) -> None:
    admin = await world.user("root", role=GlobalRole.ADMIN)
    ann = await world.user("ann")
    bob = await world.user("bob")
    await world.auth.administer_user(actor_id=admin.id, user_id=bob.id, role=None, is_active=False)
    unknown = uuid.uuid4()

    found = await world.auth.lookup_users([ann.id, bob.id, unknown, ann.id])

    assert sorted((u.email, u.display_name, u.is_active) for u in found) == [
        ("ann@example.com", "Ann", True),
        ("bob@example.com", "Bob", False),
    ]
    assert await world.auth.lookup_users([unknown]) == []
