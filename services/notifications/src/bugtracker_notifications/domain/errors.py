"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""


class NotificationsError(Exception):
    code = "error"


class NotificationNotFoundError(NotificationsError):
    code = "not_found"

    def __init__(self) -> None:
        super().__init__("No such notification.")


class MalformedEventError(NotificationsError):
    """An event lacks what its type promises; the consumer lets it go to the dead letters."""

    code = "malformed_event"
