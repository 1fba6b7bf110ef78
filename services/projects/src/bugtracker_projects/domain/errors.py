"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""

from bugtracker_shared.errors import DomainError


class ProjectsError(DomainError):
    """Every error of the projects service."""


class ProjectNotFoundError(ProjectsError):
    code = "not_found"


class MemberNotFoundError(ProjectsError):
    code = "not_found"


class ForbiddenError(ProjectsError):
    code = "forbidden"


class ProjectKeyTakenError(ProjectsError):
    code = "project_key_taken"


class AlreadyMemberError(ProjectsError):
    code = "already_member"


class UnknownUserError(ProjectsError):
    code = "unknown_user"


class LastOwnerError(ProjectsError):
    code = "last_owner"


class ProjectArchivedError(ProjectsError):
    code = "project_archived"


class RestoreExpiredError(ProjectsError):
    code = "restore_expired"
