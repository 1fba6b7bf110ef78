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
