"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""


class TicketsError(Exception):
    code = "error"


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
