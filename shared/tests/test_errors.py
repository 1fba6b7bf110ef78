"""The base of the domain errors: a stable code and an optional fixed message."""

from __future__ import annotations

from bugtracker_shared.errors import DomainError


class ServiceError(DomainError):
    pass


class NotFoundError(ServiceError):
    code = "not_found"
    message = "No such thing."


class TakenError(ServiceError):
    code = "taken"


def test_the_base_code_is_error() -> None:
    assert ServiceError().code == "error"
    assert DomainError.code == "error"


def test_a_fixed_message_is_the_text_when_none_is_given() -> None:
    error = NotFoundError()
    assert error.code == "not_found"
    assert str(error) == "No such thing."
    assert error.args == ("No such thing.",)


def test_a_given_text_wins_over_the_fixed_message() -> None:
    assert str(NotFoundError("Gone.")) == "Gone."


def test_without_a_fixed_message_the_text_is_what_is_given() -> None:
    assert str(TakenError("The key is taken.")) == "The key is taken."
    assert str(TakenError()) == ""
    assert isinstance(TakenError(), Exception)
