"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""

from bugtracker_shared.errors import DomainError


class NotificationsError(DomainError):
    """Every error of the notifications service."""


class NotificationNotFoundError(NotificationsError):
    code = "not_found"
    message = "No such notification."


class MalformedEventError(NotificationsError):
    """An event lacks what its type promises; the consumer lets it go to the dead letters."""

    code = "malformed_event"


class MailDeferredError(Exception):
    """The mail server is away or answered "try later": the mail is retried."""


class MailRefusedError(Exception):
    """The mail server refused the message for good: the mail failed."""


class InvalidUnsubscribeLinkError(ValueError):
    """An unsubscribe link that was tampered with, has expired or is malformed (422)."""

    code = "invalid_unsubscribe_token"


class InvalidPreferencesError(ValueError):
    """Preferences naming an unknown notification type (422)."""

    code = "validation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.extra = {"errors": [{"loc": ["body", "events"], "msg": message}]}
