"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.ports import EventSink, Transaction

from bugtracker_projects.domain.projects import Member, Project


@dataclass(frozen=True)
class UserInfo:
    id: uuid.UUID
    display_name: str
    is_active: bool
    email: str | None = None


class UserDirectory(Protocol):
    async def get(self, user_id: uuid.UUID, *, token: str) -> UserInfo | None:
        """The user as the auth service knows them, or None when there is no such user."""
        ...


@dataclass(frozen=True)
class ProjectFilter:
    member_id: uuid.UUID | None
    """Only projects this user belongs to; None for every project (admins)."""
    archived: bool = False
    q: str | None = None


class ProjectRepository(Protocol):
    async def add(self, project: Project) -> None: ...
    async def get(self, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
        """The project, deleted or not; `for_update` locks its row until commit."""
        ...

    async def get_by_key(self, key: str, *, for_update: bool = False) -> Project | None: ...
    async def update(self, project: Project) -> None: ...
    async def list(
        self, where: ProjectFilter, *, after_key: str | None, limit: int
    ) -> list[Project]:
        """Projects that are not deleted, ordered by key."""
        ...


class MemberRepository(Protocol):
    async def add(self, member: Member) -> None: ...
    async def role_of(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectRole | None: ...
    async def get(self, project_id: uuid.UUID, user_id: uuid.UUID) -> Member | None: ...
    async def list(
        self, project_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Member]:
        """Members ordered by (added_at, user_id) after the keyset `after`."""
        ...

    async def count_owners(self, project_id: uuid.UUID) -> int: ...
    async def update_role(self, member: Member) -> None: ...
    async def remove(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None: ...


@dataclass(frozen=True)
class ProjectMemberships:
    """A project's state and every member's role, as other services' views keep them."""

    id: uuid.UUID
    key: str
    archived: bool
    deleted: bool
    version: int
    members: dict[uuid.UUID, ProjectRole]


class AccessReader(Protocol):
    """The one read every ticket request needs: a project (by id or upper-case key) and
    the caller's role in it; None when no such project exists."""

    async def project_and_role(
        self, ref: uuid.UUID | str, user_id: uuid.UUID
    ) -> tuple[Project, ProjectRole | None] | None: ...

    async def memberships(self, *, after: uuid.UUID | None, limit: int) -> list[ProjectMemberships]:
        """Projects by id after `after` (deleted ones too), each with its members."""
        ...

    async def co_members(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """The other members of every project `user_id` is a member of (deleted projects
        excluded): who shares a project with them."""
        ...

    async def members_with_roles(
        self, project_id: uuid.UUID, roles: list[ProjectRole]
    ) -> list[uuid.UUID]:
        """The project's members who hold one of `roles` (none for an unknown project)."""
        ...


class UnitOfWork(Transaction, Protocol):
    projects: ProjectRepository
    members: MemberRepository
    outbox: EventSink
