"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""

from bugtracker_shared.errors import DomainError


class TicketsError(DomainError):
    """Every error of the tickets service."""


class TicketNotFoundError(TicketsError):
    code = "not_found"


class ProjectNotFoundError(TicketsError):
    code = "not_found"


class ForbiddenError(TicketsError):
    code = "forbidden"


class ProjectArchivedError(TicketsError):
    code = "project_archived"


class AssigneeNotMemberError(TicketsError):
    code = "assignee_not_member"


class InvalidTransitionError(TicketsError):
    code = "invalid_transition"

    def __init__(self, current: object, to: object, allowed: tuple[object, ...]) -> None:
        super().__init__(f"A ticket cannot move from {current} to {to}.")
        self.extra = {"allowed": [str(status) for status in allowed]}


class ResolutionRequiredError(TicketsError):
    code = "resolution_required"


class CommentNotFoundError(TicketsError):
    code = "not_found"


class IdempotencyKeyReusedError(TicketsError):
    code = "idempotency_key_reused"
