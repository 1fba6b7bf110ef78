"""Unsubscribe tokens are the only authorisation of a login-free endpoint: they must
round-trip, stop working after their age, and refuse any change or a wrong key."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import itsdangerous.timed
import pytest
from bugtracker_notifications.domain.errors import InvalidUnsubscribeLinkError
from bugtracker_notifications.infrastructure.unsubscribe import (
    InvalidUnsubscribeTokenError,
    UnsubscribeTokens,
)

SECRET = "a-test-secret-of-enough-length"
USER = uuid.UUID("33333333-3333-3333-3333-333333333333")


class FrozenClock:
    """Stands in for the `time` module itsdangerous reads its timestamps from."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock(1_800_000_000.0)
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=frozen.time))
    return frozen


def test_a_token_round_trips() -> None:
    tokens = UnsubscribeTokens(SECRET)
    token = tokens.make(USER, "ticket.assigned")

    assert tokens.read(token) == (USER, "ticket.assigned")
    assert UnsubscribeTokens(SECRET).read(token) == (USER, "ticket.assigned")


def test_a_token_is_url_safe() -> None:
    token = UnsubscribeTokens(SECRET).make(USER, "*")

    assert all(c.isalnum() or c in "-_." for c in token)


def test_a_token_works_until_its_max_age_and_not_after(clock: FrozenClock) -> None:
    tokens = UnsubscribeTokens(SECRET, max_age_seconds=3600)
    token = tokens.make(USER, "ticket.commented")

    clock.now += 3600
    assert tokens.read(token) == (USER, "ticket.commented")
    clock.now += 1
    with pytest.raises(InvalidUnsubscribeTokenError, match="expired"):
        tokens.read(token)


def test_the_default_max_age_is_sixty_days(clock: FrozenClock) -> None:
    tokens = UnsubscribeTokens(SECRET)
    token = tokens.make(USER, "ticket.assigned")

    clock.now += 60 * 24 * 3600
    assert tokens.read(token) == (USER, "ticket.assigned")
    clock.now += 1
    with pytest.raises(InvalidUnsubscribeTokenError):
        tokens.read(token)


def test_a_tampered_token_is_refused() -> None:
    tokens = UnsubscribeTokens(SECRET)
    token = tokens.make(USER, "ticket.assigned")
    payload, timestamp, signature = token.rsplit(".", 2)
    other = tokens.make(uuid.uuid4(), "ticket.assigned").rsplit(".", 2)[0]

    def changed(text: str) -> str:
        """`text` with its first character replaced by another (a base64 character whose
        bits all count: changing the last one could leave the decoded bytes as they were)."""
        return ("B" if text[0] == "A" else "A") + text[1:]

    for forged in (
        f"{other}.{timestamp}.{signature}",
        f"{payload}.{timestamp}.{changed(signature)}",
        f"{payload}.{changed(timestamp)}.{signature}",
        token + "x",
    ):
        with pytest.raises(InvalidUnsubscribeTokenError):
            tokens.read(forged)


def test_a_token_of_another_key_is_refused() -> None:
    token = UnsubscribeTokens("another-secret-of-enough-length").make(USER, "ticket.assigned")

    with pytest.raises(InvalidUnsubscribeTokenError):
        UnsubscribeTokens(SECRET).read(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "...", "é.ü.ß", "x" * 5000])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidUnsubscribeTokenError):
        UnsubscribeTokens(SECRET).read(token)


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    """Signed with our key and salt but not a (user, type) pair: still a clean refusal."""
    tokens = UnsubscribeTokens(SECRET)
    serializer = tokens._serializer  # the same key and salt

    for payload in ({"u": USER.hex}, [USER.hex], ["not-a-uuid", "ticket.assigned"], [USER.hex, ""]):
        with pytest.raises(InvalidUnsubscribeTokenError, match="malformed"):
            tokens.read(serializer.dumps(payload))


def test_the_error_is_the_domain_error_and_a_value_error() -> None:
    with pytest.raises(InvalidUnsubscribeLinkError) as caught:
        UnsubscribeTokens(SECRET).read("nope")

    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "invalid_unsubscribe_token"


@pytest.mark.parametrize("secret", ["", "   ", "short", "x" * 15, " " * 20])
def test_an_empty_or_short_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY"):
        UnsubscribeTokens(secret)


def test_a_secret_of_sixteen_characters_is_enough() -> None:
    UnsubscribeTokens("x" * 16)


def test_an_empty_notification_type_is_refused() -> None:
    with pytest.raises(ValueError, match="notification_type"):
        UnsubscribeTokens(SECRET).make(USER, "")
