"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""

from typing import ClassVar

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


class RestoreExpiredError(TicketsError):
    code = "restore_expired"
    message = "The ticket was deleted longer ago than it can be restored."


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


# -- tracker configuration (docs/adr/0040) -------------------------------------------------


class RequestRuleError(TicketsError):
    """A request the schema accepts but a rule of the project refuses: 422
    validation_error with one `{loc, msg}` per problem, like a schema error."""

    code = "validation_error"

    def __init__(self, problems: list[tuple[list[str], str]], detail: str = "") -> None:
        super().__init__(detail or "; ".join(message for _, message in problems))
        self.extra = {"errors": [{"loc": loc, "msg": message} for loc, message in problems]}


class InvalidConfigurationError(RequestRuleError):
    """A workflow, ticket types or field definition that breaks a rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__([(["body"], problem) for problem in problems])


class InvalidFieldValuesError(RequestRuleError):
    """Custom field values a ticket cannot take (one error per field)."""

    def __init__(self, problems: dict[str, str]) -> None:
        ordered = sorted(problems.items())
        super().__init__(
            [(["body", "fields", key], problem) for key, problem in ordered],
            "; ".join(f"fields.{key} {problem}" for key, problem in ordered),
        )


class InUseError(TicketsError):
    """Removing statuses, types or options that tickets still use needs a `migrate` map
    for them (409 with the number of tickets for each). `item` and `items` name what is
    removed, one and many."""

    item: ClassVar[str]
    items: ClassVar[str]

    def __init__(self, counts: dict[str, int]) -> None:
        names = ", ".join(sorted(counts))
        super().__init__(
            f"Tickets still use the {self.items} being removed ({names}); "
            "give `migrate` to move them."
        )
        self.extra = {"counts": counts}


class StatusInUseError(InUseError):
    code = "status_in_use"
    item, items = "status", "statuses"


class TypeInUseError(InUseError):
    code = "type_in_use"
    item, items = "type", "ticket types"


class OptionInUseError(InUseError):
    code = "option_in_use"
    item, items = "option", "options"


class FieldNotFoundError(TicketsError):
    code = "not_found"
    message = "No such field."


class FieldExistsError(TicketsError):
    code = "field_exists"
    message = "The project has a field with this key (or one still being removed)."


class InvalidTicketTypeError(RequestRuleError):
    """A ticket type the project does not have."""

    def __init__(self, ticket_type: str, types: list[str]) -> None:
        message = f"{ticket_type!r} is not a ticket type of this project ({', '.join(types)})."
        super().__init__([(["body", "type"], message)])


class InvalidFilterError(RequestRuleError):
    """A list filter naming what the project does not have: a status, a type, a field,
    or a field value its type cannot take."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__([(["query", parameter], problem)], f"{parameter} {problem}")


class PreconditionRequiredError(TicketsError):
    code = "precondition_required"
    message = "Replacing this document needs If-Match with the ETag of the version you changed."


# -- attachments (docs/adr/0041) -------------------------------------------------------------


class AttachmentNotFoundError(TicketsError):
    code = "not_found"
    message = "No such attachment."


class AttachmentTooLargeError(TicketsError):
    code = "payload_too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"An attachment is at most {max_bytes} bytes.")
        self.extra = {"max_bytes": max_bytes}


class QuotaExceededError(TicketsError):
    code = "quota_exceeded"

    def __init__(self, quota_bytes: int, used_bytes: int) -> None:
        super().__init__(
            f"The project's attachments would take more than its quota of {quota_bytes} bytes."
        )
        self.extra = {"quota_bytes": quota_bytes, "used_bytes": used_bytes}


class InvalidUploadError(RequestRuleError):
    """A body that is not one `file` part of multipart/form-data."""

    def __init__(self, problem: str) -> None:
        super().__init__([(["body", "file"], problem)])


# -- ticket query language -------------------------------------------------------------------


class InvalidQueryError(TicketsError):
    """A `query` the ticket query language cannot take, with the offset (0-based) of the
    offending character in it."""

    code = "invalid_query"

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position
        self.extra = {"position": position}


# -- saved filters and export (docs/adr/0045) ------------------------------------------------


class ExportTooLargeError(TicketsError):
    code = "export_too_large"

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(
            f"The list has {total} tickets; an export holds at most {limit}: narrow it."
        )
        self.extra = {"total": total, "limit": limit}


class FilterNotFoundError(TicketsError):
    code = "not_found"
    message = "There is no such filter."


class InvalidFilterProjectError(RequestRuleError):
    """A saved filter's project the caller cannot see, or a shared filter without one."""

    def __init__(self, problem: str) -> None:
        super().__init__([(["body", "project_id"], problem)])
