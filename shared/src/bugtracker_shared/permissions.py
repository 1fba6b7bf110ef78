"""The project role matrix: one table, used by projects and by tickets."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ProjectRole(StrEnum):
    VIEWER = "viewer"
    REPORTER = "reporter"
    DEVELOPER = "developer"
    MAINTAINER = "maintainer"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: ProjectRole) -> bool:
        return self.rank >= other.rank


_RANKS = {role: rank for rank, role in enumerate(ProjectRole)}


class Permission(StrEnum):
    PROJECT_READ = "project.read"
    TICKET_COMMENT = "ticket.comment"
    TICKET_WATCH = "ticket.watch"
    TICKET_CREATE = "ticket.create"
    TICKET_EDIT_OWN = "ticket.edit_own"
    TICKET_EDIT_ANY = "ticket.edit_any"
    TICKET_ASSIGN = "ticket.assign"
    TICKET_TRANSITION_ANY = "ticket.transition_any"
    TICKET_DELETE = "ticket.delete"
    PROJECT_UPDATE = "project.update"
    PROJECT_ARCHIVE = "project.archive"
    MEMBER_MANAGE = "member.manage"
    WEBHOOK_MANAGE = "webhook.manage"
    OWNER_MANAGE = "owner.manage"
    PROJECT_DELETE = "project.delete"


_GRANTED_AT: dict[ProjectRole, tuple[Permission, ...]] = {
    ProjectRole.VIEWER: (
        Permission.PROJECT_READ,
        Permission.TICKET_COMMENT,
        Permission.TICKET_WATCH,
    ),
    ProjectRole.REPORTER: (Permission.TICKET_CREATE, Permission.TICKET_EDIT_OWN),
    ProjectRole.DEVELOPER: (
        Permission.TICKET_EDIT_ANY,
        Permission.TICKET_ASSIGN,
        Permission.TICKET_TRANSITION_ANY,
    ),
    ProjectRole.MAINTAINER: (
        Permission.TICKET_DELETE,
        Permission.PROJECT_UPDATE,
        Permission.PROJECT_ARCHIVE,
        Permission.MEMBER_MANAGE,
        Permission.WEBHOOK_MANAGE,
    ),
    ProjectRole.OWNER: (Permission.OWNER_MANAGE, Permission.PROJECT_DELETE),
}

# Each role includes everything of the roles below it.
ROLE_PERMISSIONS: dict[ProjectRole, frozenset[Permission]] = {
    role: frozenset(
        permission
        for lower in ProjectRole
        if role.at_least(lower)
        for permission in _GRANTED_AT[lower]
    )
    for role in ProjectRole
}

ADMIN_PERMISSIONS = frozenset(Permission)


def permissions_for(role: ProjectRole | None, *, is_admin: bool) -> frozenset[Permission]:
    if is_admin:
        return ADMIN_PERMISSIONS
    if role is None:
        return frozenset()
    return ROLE_PERMISSIONS[role]


class AccessChecks:
    """A caller's standing in one project, checked the same way in projects and tickets.

    A subclass has `permissions` and says whether the project is read-only; its class
    attributes name the service's own errors (each maps to its HTTP status there)."""

    forbidden_error: ClassVar[type[Exception]]
    archived_error: ClassVar[type[Exception]]
    permissions: frozenset[Permission]

    def is_read_only(self) -> bool:
        raise NotImplementedError

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise self.forbidden_error("Your role in this project does not allow this.")

    def require_writable(self) -> None:
        if self.is_read_only():
            raise self.archived_error("The project is archived and read-only.")


PERMISSION_MEANINGS: dict[Permission, str] = {
    Permission.PROJECT_READ: "see the project, its members and tickets",
    Permission.TICKET_COMMENT: "comment on tickets",
    Permission.TICKET_WATCH: "watch tickets",
    Permission.TICKET_CREATE: "create tickets",
    Permission.TICKET_EDIT_OWN: "edit, close and reopen tickets they reported",
    Permission.TICKET_EDIT_ANY: "edit any ticket",
    Permission.TICKET_ASSIGN: "assign tickets",
    Permission.TICKET_TRANSITION_ANY: "make any workflow transition",
    Permission.TICKET_DELETE: "delete and restore tickets",
    Permission.PROJECT_UPDATE: "change the project's name and description",
    Permission.PROJECT_ARCHIVE: "archive and unarchive the project",
    Permission.MEMBER_MANAGE: "add members, change roles, remove members (not owners)",
    Permission.WEBHOOK_MANAGE: (
        "create, change, rotate, ping and delete webhooks; read their deliveries"
    ),
    Permission.OWNER_MANAGE: "grant, change and remove the owner role",
    Permission.PROJECT_DELETE: "delete and restore the project",
}


def markdown_table() -> str:
    """The role matrix as the README shows it (a test keeps the two identical)."""
    roles = list(ProjectRole)
    lines = [
        "| permission | what it allows | " + " | ".join(r.value for r in roles) + " | admin |",
        "|---|---|" + "---|" * (len(roles) + 1),
    ]
    for permission in Permission:
        marks = " | ".join("✓" if permission in ROLE_PERMISSIONS[r] else "" for r in roles)
        lines.append(f"| `{permission.value}` | {PERMISSION_MEANINGS[permission]} | {marks} | ✓ |")
    return "\n".join(lines)
