"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""

from typing import ClassVar

from bugtracker_shared.errors import DomainError


class AuthError(DomainError):
    """Every error of the auth service."""


class EmailTakenError(AuthError):
    code = "email_taken"


class InvalidCredentialsError(AuthError):
    code = "invalid_credentials"
    message = "The email or password is not correct."


class InvalidRefreshTokenError(AuthError):
    """Unknown, expired, spent or revoked refresh token: one answer for all of them."""

    code = "invalid_refresh_token"
    message = "The refresh token is not valid; log in again."


class SessionRevokedError(AuthError):
    code = "token_revoked"
    message = "The session of this access token has ended; log in again."


class WrongCurrentPasswordError(AuthError):
    code = "invalid_current_password"
    message = "The current password is not correct."


class WeakPasswordError(AuthError):
    code = "weak_password"


class ForbiddenError(AuthError):
    code = "forbidden"


class UserNotFoundError(AuthError):
    code = "not_found"


class RegistrationClosedError(AuthError):
    code = "registration_closed"


class RateLimitedError(AuthError):
    """Too many failed logins (or current-password checks); `headers` carries
    `Retry-After` to the problem response."""

    code = "rate_limited"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("Too many failed password attempts; try again later.")
        self.retry_after_seconds = max(1, retry_after_seconds)
        self.headers = {"Retry-After": str(self.retry_after_seconds)}


class ThrottleUnavailableError(AuthError):
    """The store of the login throttle's counters cannot be reached: no password is
    checked without them (throttling fails closed, ADR 0037). 503 with `Retry-After`."""

    code = "throttle_unavailable"
    message = "Passwords cannot be checked right now; try again shortly."
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class InsufficientScopeError(AuthError):
    """A token minted for a personal access token asks for what tokens may not do
    (make tokens, change the password)."""

    code = "insufficient_scope"
    message = "A personal access token cannot do this; use a session (log in)."
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}


class TooManyTokensError(AuthError):
    code = "conflict"


class PersonalAccessTokenNotFoundError(AuthError):
    code = "not_found"
    message = "No such personal access token."


class InvalidPersonalAccessTokenError(AuthError):
    """Unknown, revoked or expired token, or its owner is deactivated: one answer."""

    code = "invalid_token"
    message = "The personal access token is not valid."
