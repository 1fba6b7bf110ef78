"""Projects use cases. Each one owns a unit of work and commits it at most once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.events import new_event
from bugtracker_shared.pagination import (
    Listing,
    decode_cursor,
    decode_time_id_cursor,
    time_id_key,
)
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.request_context import current_request_id

from bugtracker_projects.application.ports import UnitOfWork, UserDirectory
from bugtracker_projects.domain.errors import (
    AlreadyMemberError,
    MemberNotFoundError,
    ProjectKeyTakenError,
    ProjectNotFoundError,
    UnknownUserError,
)
from bugtracker_projects.domain.projects import (
    Access,
    Caller,
    Member,
    Project,
    access_for,
    check_role_grant,
)

SERVICE = "projects"


def project_data(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "key": project.key,
        "name": project.name,
        "description": project.description,
        "archived": project.is_archived,
        "version": project.version,
    }


def parse_project_ref(ref: str) -> uuid.UUID | str:
    """A project is named by its id or by its key (case-insensitive)."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref.upper()


@dataclass
class ProjectUseCases:
    uow: Callable[[], UnitOfWork]
    users: UserDirectory

    async def create_project(
        self, caller: Caller, *, key: str, name: str, description: str
    ) -> Project:
        creator = await self.users.get(caller.user_id, token=caller.token)
        now = datetime.now(UTC)
        project = Project(
            id=uuid.uuid4(),
            key=key,
            name=name,
            description=description,
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
        )
        owner = Member(
            project_id=project.id,
            user_id=caller.user_id,
            display_name=creator.display_name if creator else "",
            role=ProjectRole.OWNER,
            added_at=now,
        )
        async with self.uow() as uow:
            if await uow.projects.get_by_key(key) is not None:
                raise ProjectKeyTakenError(f"The project key {key} is taken.")
            await uow.projects.add(project)
            await uow.members.add(owner)
            await uow.outbox.add(
                new_event(
                    "project.created",
                    service=SERVICE,
                    subject=project.id,
                    sequence=project.version,
                    data=project_data(project) | {"owner_id": str(caller.user_id)},
                    actor_id=caller.user_id,
                    correlation_id=current_request_id(),
                )
            )
            await uow.commit()
        return project

    async def list_projects(
        self, caller: Caller, *, limit: int, cursor: str | None
    ) -> Listing[Project]:
        after_key = str(decode_cursor(cursor, 1)[0]) if cursor else None
        async with self.uow() as uow:
            projects = await uow.projects.list_for(
                None if caller.is_admin else caller.user_id, after_key=after_key, limit=limit + 1
            )
        return Listing.from_overfetch(projects, limit, lambda p: [p.key])

    async def access(self, caller: Caller, ref: str) -> Access:
        """The project and the caller's rights in it; 404 for a caller outside it."""
        async with self.uow() as uow:
            return await self._access(uow, caller, ref)

    async def _access(self, uow: UnitOfWork, caller: Caller, ref: str) -> Access:
        parsed = parse_project_ref(ref)
        if isinstance(parsed, uuid.UUID):
            project = await uow.projects.get(parsed)
        else:
            project = await uow.projects.get_by_key(parsed)
        if project is None:
            raise ProjectNotFoundError("No such project.")
        role = await uow.members.role_of(project.id, caller.user_id)
        return access_for(project, caller, role)

    async def list_members(
        self, caller: Caller, ref: str, *, limit: int, cursor: str | None
    ) -> Listing[Member]:
        after = decode_time_id_cursor(cursor) if cursor else None
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref)
            members = await uow.members.list(access.project.id, after=after, limit=limit + 1)
        return Listing.from_overfetch(members, limit, lambda m: time_id_key(m.added_at, m.user_id))

    async def get_member(self, caller: Caller, ref: str, user_id: uuid.UUID) -> Member:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref)
            member = await uow.members.get(access.project.id, user_id)
        if member is None:
            raise MemberNotFoundError("This user is not a member of the project.")
        return member

    async def add_member(
        self, caller: Caller, ref: str, *, user_id: uuid.UUID, role: ProjectRole
    ) -> Member:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref)
        check_role_grant(access, role)
        user = await self.users.get(user_id, token=caller.token)
        if user is None or not user.is_active:
            raise UnknownUserError("There is no active user with this id.")
        member = Member(
            project_id=access.project.id,
            user_id=user.id,
            display_name=user.display_name,
            role=role,
            added_at=datetime.now(UTC),
        )
        async with self.uow() as uow:
            if await uow.members.role_of(member.project_id, member.user_id) is not None:
                raise AlreadyMemberError("This user is a member already.")
            await uow.members.add(member)
            await uow.outbox.add(
                new_event(
                    "project.member_added",
                    service=SERVICE,
                    subject=access.project.id,
                    sequence=access.project.version,
                    data={
                        "project_id": str(access.project.id),
                        "project_key": access.project.key,
                        "user_id": str(member.user_id),
                        "role": member.role.value,
                    },
                    actor_id=caller.user_id,
                    correlation_id=current_request_id(),
                )
            )
            await uow.commit()
        return member
