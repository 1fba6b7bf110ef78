"""Projects and memberships: data and the rules about who may do what."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from bugtracker_shared.permissions import Permission, ProjectRole, permissions_for

from bugtracker_projects.domain.errors import ForbiddenError, ProjectNotFoundError

PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


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
    version: int = 1

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


@dataclass
class Member:
    project_id: uuid.UUID
    user_id: uuid.UUID
    display_name: str
    role: ProjectRole
    added_at: datetime


@dataclass(frozen=True)
class Caller:
    """Who acts, as the access token says: the user and whether they are a global admin."""

    user_id: uuid.UUID
    is_admin: bool
    token: str = field(repr=False)


@dataclass(frozen=True)
class Access:
    """What a caller may do in one project."""

    project: Project
    role: ProjectRole | None
    permissions: frozenset[Permission]

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise ForbiddenError("Your role in this project does not allow this.")


def access_for(project: Project, caller: Caller, role: ProjectRole | None) -> Access:
    """A caller who is neither a member nor an admin must not learn the project exists."""
    if role is None and not caller.is_admin:
        raise ProjectNotFoundError("No such project.")
    return Access(
        project=project,
        role=role,
        permissions=permissions_for(role, is_admin=caller.is_admin),
    )


def check_role_grant(access: Access, role: ProjectRole) -> None:
    """Maintainers manage members; only owners (or admins) hand out `owner`."""
    access.require(Permission.MEMBER_MANAGE)
    if role is ProjectRole.OWNER:
        access.require(Permission.OWNER_MANAGE)
