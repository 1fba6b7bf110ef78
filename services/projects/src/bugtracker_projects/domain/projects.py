"""Projects and memberships: data and the rules about who may do what."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bugtracker_shared.permissions import AccessChecks, Permission, ProjectRole, permissions_for

from bugtracker_projects.domain.errors import (
    ForbiddenError,
    LastOwnerError,
    ProjectArchivedError,
    ProjectNotFoundError,
    RestoreExpiredError,
)

PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
RESTORE_WINDOW = timedelta(days=30)


@dataclass
class Project:
    id: uuid.UUID
    key: str
    name: str
    description: str
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    deleted_at: datetime | None = None
    version: int = 1

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1


@dataclass
class Member:
    project_id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    role: ProjectRole
    added_at: datetime
    email: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who acts, as the access token says: the user and whether they are a global admin."""

    user_id: uuid.UUID
    is_admin: bool
    token: str = field(repr=False)


@dataclass(frozen=True)
class Access(AccessChecks):
    """What a caller may do in one project."""

    forbidden_error = ForbiddenError
    archived_error = ProjectArchivedError

    project: Project
    role: ProjectRole | None
    permissions: frozenset[Permission]

    def is_read_only(self) -> bool:
        return self.project.is_archived


def access_for(project: Project, caller: Caller, role: ProjectRole | None) -> Access:
    """A caller who is neither a member nor an admin must not learn the project exists,
    and a deleted project exists for nobody until it is restored."""
    if project.is_deleted or (role is None and not caller.is_admin):
        raise ProjectNotFoundError("No such project.")
    return Access(
        project=project,
        role=role,
        permissions=permissions_for(role, is_admin=caller.is_admin),
    )


def restore_access_for(
    project: Project, caller: Caller, role: ProjectRole | None, now: datetime
) -> None:
    """Only an owner or an admin restores, and only within the restore window."""
    if role is None and not caller.is_admin:
        raise ProjectNotFoundError("No such project.")
    if not permissions_for(role, is_admin=caller.is_admin) >= {Permission.PROJECT_DELETE}:
        raise ForbiddenError("Only an owner may restore the project.")
    if project.deleted_at is None:
        return
    if now - project.deleted_at > RESTORE_WINDOW:
        raise RestoreExpiredError("The project was deleted more than 30 days ago.")


def check_role_grant(access: Access, role: ProjectRole) -> None:
    """Maintainers manage members; only owners (or admins) hand out `owner`."""
    access.require(Permission.MEMBER_MANAGE)
    if role is ProjectRole.OWNER:
        access.require(Permission.OWNER_MANAGE)


def check_role_change(
    access: Access, member: Member, new_role: ProjectRole, owner_count: int
) -> None:
    """Changing a role needs member management; touching `owner` needs an owner; the last
    owner stays an owner."""
    check_role_grant(access, new_role)
    if member.role is ProjectRole.OWNER:
        access.require(Permission.OWNER_MANAGE)
        if new_role is not ProjectRole.OWNER and owner_count <= 1:
            raise LastOwnerError("A project keeps at least one owner.")


def check_removal(access: Access, caller: Caller, member: Member, owner_count: int) -> None:
    """Members may leave; maintainers remove others; only owners remove an owner; the last
    owner cannot go."""
    if member.user_id != caller.user_id:
        access.require(Permission.MEMBER_MANAGE)
        if member.role is ProjectRole.OWNER:
            access.require(Permission.OWNER_MANAGE)
    if member.role is ProjectRole.OWNER and owner_count <= 1:
        raise LastOwnerError("A project keeps at least one owner.")
