"""Signed one-click unsubscribe tokens (RFC 8058).

`POST /api/v1/notifications/unsubscribe?token=...` answers without a login: a mail
provider posts it when the user clicks "unsubscribe", carrying no credentials. The token
is therefore the whole authorisation, so it is signed (HMAC, itsdangerous) over the
(user, notification type) it turns e-mail off for, and carries its own timestamp so it
stops working after `max_age_seconds`: a mail forwarded or leaked long ago cannot keep
changing someone's preferences. Nothing is stored per token; rotating
`BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY` invalidates every link sent so far.
"""

from __future__ import annotations

import uuid

from itsdangerous import BadData, URLSafeTimedSerializer

from bugtracker_notifications.domain.errors import InvalidUnsubscribeLinkError

SECRET_ENV = "BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY"  # noqa: S105 (a variable's name)
MIN_SECRET_CHARS = 16
DEFAULT_MAX_AGE_SECONDS = 60 * 24 * 3600
# Keeps these signatures apart from any other itsdangerous use of the same key.
SALT = "bugtracker.notifications.unsubscribe.v1"


class InvalidUnsubscribeTokenError(InvalidUnsubscribeLinkError):
    """The token was tampered with, has expired or is malformed. A subclass of the
    domain's `InvalidUnsubscribeLinkError` (a `ValueError`), which the API maps to 422,
    so the application catches it without importing the infrastructure."""


class UnsubscribeTokens:
    """Makes and reads the `token` of an unsubscribe URL."""

    def __init__(self, secret_key: str, *, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        # A short key can be guessed offline from any one link, and then every user's
        # preferences can be changed: refuse to start rather than sign with it.
        if len(secret_key.strip()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"{SECRET_ENV} must be set to a secret of at least {MIN_SECRET_CHARS} "
                "characters (it signs the one-click unsubscribe links)"
            )
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self._max_age_seconds = max_age_seconds
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)

    def make(self, user_id: uuid.UUID, notification_type: str) -> str:
        """A URL-safe token for turning off `notification_type` e-mail for `user_id`."""
        if not notification_type:
            raise ValueError("notification_type must not be empty")
        return self._serializer.dumps([user_id.hex, notification_type])

    def read(self, token: str) -> tuple[uuid.UUID, str]:
        """The (user, notification type) the token was made for; raises
        `InvalidUnsubscribeTokenError` when it is tampered with, expired or malformed."""
        try:
            payload = self._serializer.loads(token, max_age=self._max_age_seconds)
        except BadData as exc:  # bad signature, expired, undecodable payload
            raise InvalidUnsubscribeTokenError("invalid or expired unsubscribe token") from exc
        # Signed by us, so well-formed unless the payload's shape changed between
        # versions; checked anyway, as a bad shape must never become a 500.
        match payload:
            case [str(user_hex), str(notification_type)] if notification_type:
                try:
                    return uuid.UUID(hex=user_hex), notification_type
                except ValueError:
                    pass
        raise InvalidUnsubscribeTokenError("malformed unsubscribe token")
