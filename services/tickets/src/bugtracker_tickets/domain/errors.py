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


# -- planning (docs/adr/0039) ----------------------------------------------------------


class MilestoneNotFoundError(TicketsError):
    code = "not_found"
    message = "No such milestone."


class MilestoneExistsError(TicketsError):
    code = "milestone_exists"
    message = "The project has a milestone with this name."


class InvalidMilestoneError(TicketsError):
    code = "invalid_milestone"
    message = "The milestone must be an existing milestone of the ticket's project."


class InvalidParentError(TicketsError):
    code = "invalid_parent"


class RelationNotFoundError(TicketsError):
    code = "not_found"
    message = "No such relation."


class RelationExistsError(TicketsError):
    code = "relation_exists"
    message = "These tickets are related like this already."


class RelationCycleError(TicketsError):
    code = "relation_cycle"
    message = "This relation would make the tickets block each other in a cycle."


class InvalidRelationError(TicketsError):
    code = "invalid_relation"


class UnfinishedDependenciesError(TicketsError):
    """A ticket cannot be finished before its blockers and children are."""

    code = "unfinished_dependencies"

    def __init__(self, blockers: list[dict[str, str]], children: list[dict[str, str]]) -> None:
        super().__init__("The ticket has unfinished blockers or children; finish them first.")
        self.extra = {"blockers": blockers, "children": children}


class TooManyLabelsError(TicketsError):
    """Labels added in bulk would give a ticket more than it may carry."""

    code = "too_many_labels"


class BulkRejectedError(TicketsError):
    """A bulk change that some ticket cannot take: nothing changed."""

    code = "bulk_rejected"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("Some tickets cannot take this change; nothing was changed.")
        self.extra = {"errors": errors}
