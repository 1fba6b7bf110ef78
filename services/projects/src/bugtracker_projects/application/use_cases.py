"""Projects use cases. Each one owns a unit of work and commits it at most once.

Every change to a project or its memberships locks the project row, bumps its version
and writes an event to the outbox in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.etags import check_version
from bugtracker_shared.event_schemas import (
    MembershipData,
    ProjectArchived,
    ProjectCreated,
    ProjectData,
    ProjectDeleted,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
    ProjectUpdated,
)
from bugtracker_shared.events import new_event
from bugtracker_shared.pagination import (
    Listing,
    decode_cursor,
    decode_time_id_cursor,
    time_id_key,
)
from bugtracker_shared.permissions import Permission, ProjectRole
from bugtracker_shared.request_context import current_request_id

from bugtracker_projects.application.ports import (
    AccessReader,
    ProjectFilter,
    ProjectMemberships,
    UnitOfWork,
    UserDirectory,
)
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
    check_removal,
    check_role_change,
    check_role_grant,
    restore_access_for,
)

SERVICE = "projects"


def project_data(project: Project) -> dict[str, Any]:
    """The project as its events carry it (the fields of event_schemas.ProjectData)."""
    return {
        "id": project.id,
        "key": project.key,
        "name": project.name,
        "description": project.description,
        "archived": project.is_archived,
        "deleted": project.is_deleted,
        "version": project.version,
    }


# The model of each membership event's `data`.
MEMBER_EVENTS: dict[str, type[MembershipData]] = {
    "project.member_added": ProjectMemberAdded,
    "project.member_role_changed": ProjectMemberRoleChanged,
    "project.member_removed": ProjectMemberRemoved,
}


def parse_project_ref(ref: str) -> uuid.UUID | str:
    """A project is named by its id or by its key (case-insensitive)."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref.upper()


@dataclass(frozen=True)
class ProjectChanges:
    name: str | None = None
    description: str | None = None


@dataclass
class ProjectUseCases:
    uow: Callable[[], UnitOfWork]
    users: UserDirectory
    reads: AccessReader

    # -- helpers -----------------------------------------------------------------------

    async def _project(self, uow: UnitOfWork, ref: str, *, for_update: bool = False) -> Project:
        parsed = parse_project_ref(ref)
        if isinstance(parsed, str):
            project = await uow.projects.get_by_key(parsed, for_update=for_update)
        else:
            project = await uow.projects.get(parsed, for_update=for_update)
        if project is None:
            raise ProjectNotFoundError("No such project.")
        return project

    async def _access(
        self, uow: UnitOfWork, caller: Caller, ref: str, *, for_update: bool = False
    ) -> Access:
        project = await self._project(uow, ref, for_update=for_update)
        role = await uow.members.role_of(project.id, caller.user_id)
        return access_for(project, caller, role)

    @staticmethod
    async def _record(
        uow: UnitOfWork,
        name: str,
        project: Project,
        caller: Caller,
        data: ProjectData | MembershipData,
    ) -> None:
        await uow.outbox.add(
            new_event(
                name,
                service=SERVICE,
                subject=project.id,
                sequence=project.version,
                data=data,
                actor_id=caller.user_id,
                correlation_id=current_request_id(),
            )
        )

    # -- projects ----------------------------------------------------------------------

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
            email=creator.email if creator else None,
        )
        async with self.uow() as uow:
            if await uow.projects.get_by_key(key) is not None:
                raise ProjectKeyTakenError(f"The project key {key} is taken.")
            await uow.projects.add(project)
            await uow.members.add(owner)
            data = ProjectCreated(**project_data(project), owner_id=caller.user_id)
            await self._record(uow, "project.created", project, caller, data)
            await uow.commit()
        return project

    async def list_projects(
        self,
        caller: Caller,
        *,
        limit: int,
        cursor: str | None,
        archived: bool = False,
        q: str | None = None,
    ) -> Listing[Project]:
        after_key = str(decode_cursor(cursor, 1)[0]) if cursor else None
        where = ProjectFilter(
            member_id=None if caller.is_admin else caller.user_id, archived=archived, q=q
        )
        async with self.uow() as uow:
            projects = await uow.projects.list(where, after_key=after_key, limit=limit + 1)
        return Listing.from_overfetch(projects, limit, lambda p: [p.key])

    async def access(self, caller: Caller, ref: str) -> Access:
        """The project and the caller's rights in it; 404 for a caller outside it.

        One statement, outside a unit of work: tickets asks this on every request."""
        found = await self.reads.project_and_role(parse_project_ref(ref), caller.user_id)
        if found is None:
            raise ProjectNotFoundError("No such project.")
        project, role = found
        return access_for(project, caller, role)

    async def memberships(self, *, after: uuid.UUID | None, limit: int) -> list[ProjectMemberships]:
        """For other services' membership views (an internal call, no caller): a page of
        every project, deleted ones included, with its members."""
        return await self.reads.memberships(after=after, limit=limit)

    async def co_members(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """For auth's user directory (an internal call, no caller): who shares a project
        that is not deleted with this user."""
        return await self.reads.co_members(user_id)

    async def maintainers(self, project_id: uuid.UUID) -> list[uuid.UUID]:
        """For the webhooks service (an internal call, no caller): whom to tell that one
        of the project's webhooks was turned off."""
        roles = [role for role in ProjectRole if role.at_least(ProjectRole.MAINTAINER)]
        return await self.reads.members_with_roles(project_id, roles)

    async def update_project(
        self, caller: Caller, ref: str, changes: ProjectChanges, *, expected_version: int | None
    ) -> Project:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref, for_update=True)
            access.require(Permission.PROJECT_UPDATE)
            access.require_writable()
            project = access.project
            check_version(project.version, expected_version)
            diff: dict[str, dict[str, Any]] = {}
            if changes.name is not None and changes.name != project.name:
                diff["name"] = {"from": project.name, "to": changes.name}
                project.name = changes.name
            if changes.description is not None and changes.description != project.description:
                diff["description"] = {"from": project.description, "to": changes.description}
                project.description = changes.description
            if not diff:
                return project
            project.touch(datetime.now(UTC))
            await uow.projects.update(project)
            data = ProjectUpdated(**project_data(project), changes=diff)
            await self._record(uow, "project.updated", project, caller, data)
            await uow.commit()
        return project

    async def set_archived(
        self, caller: Caller, ref: str, *, archived: bool, expected_version: int | None
    ) -> Project:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref, for_update=True)
            access.require(Permission.PROJECT_ARCHIVE)
            project = access.project
            check_version(project.version, expected_version)
            if project.is_archived == archived:
                return project
            now = datetime.now(UTC)
            project.archived_at = now if archived else None
            project.touch(now)
            await uow.projects.update(project)
            changes = {"archived": {"from": not archived, "to": archived}}
            data = (ProjectArchived if archived else ProjectUpdated)(
                **project_data(project), changes=changes
            )
            name = "project.archived" if archived else "project.updated"
            await self._record(uow, name, project, caller, data)
            await uow.commit()
        return project

    async def delete_project(self, caller: Caller, ref: str) -> None:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref, for_update=True)
            access.require(Permission.PROJECT_DELETE)
            project = access.project
            now = datetime.now(UTC)
            project.deleted_at = now
            project.touch(now)
            await uow.projects.update(project)
            data = ProjectDeleted(**project_data(project))
            await self._record(uow, "project.deleted", project, caller, data)
            await uow.commit()

    async def restore_project(self, caller: Caller, ref: str) -> Project:
        async with self.uow() as uow:
            project = await self._project(uow, ref, for_update=True)
            role = await uow.members.role_of(project.id, caller.user_id)
            now = datetime.now(UTC)
            restore_access_for(project, caller, role, now)
            if not project.is_deleted:
                return project
            project.deleted_at = None
            project.touch(now)
            await uow.projects.update(project)
            changes = {"deleted": {"from": True, "to": False}}
            data = ProjectUpdated(**project_data(project), changes=changes)
            await self._record(uow, "project.updated", project, caller, data)
            await uow.commit()
        return project

    # -- members -----------------------------------------------------------------------

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
            email=user.email,
        )
        async with self.uow() as uow:
            access = await self._access(uow, caller, str(member.project_id), for_update=True)
            check_role_grant(access, role)
            if await uow.members.role_of(member.project_id, member.user_id) is not None:
                raise AlreadyMemberError("This user is a member already.")
            await uow.members.add(member)
            await self._member_event(uow, "project.member_added", access.project, caller, member)
            await uow.commit()
        return member

    async def change_role(
        self, caller: Caller, ref: str, user_id: uuid.UUID, role: ProjectRole
    ) -> Member:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref, for_update=True)
            member = await uow.members.get(access.project.id, user_id)
            if member is None:
                raise MemberNotFoundError("This user is not a member of the project.")
            if member.role is role:
                check_role_grant(access, role)
                return member
            owners = await uow.members.count_owners(access.project.id)
            check_role_change(access, member, role, owners)
            previous = member.role
            member.role = role
            await uow.members.update_role(member)
            await self._member_event(
                uow,
                "project.member_role_changed",
                access.project,
                caller,
                member,
                changes={"role": {"from": previous.value, "to": role.value}},
            )
            await uow.commit()
        return member

    async def remove_member(self, caller: Caller, ref: str, user_id: uuid.UUID) -> None:
        async with self.uow() as uow:
            access = await self._access(uow, caller, ref, for_update=True)
            member = await uow.members.get(access.project.id, user_id)
            if member is None:
                raise MemberNotFoundError("This user is not a member of the project.")
            check_removal(access, caller, member, await uow.members.count_owners(member.project_id))
            await uow.members.remove(member.project_id, member.user_id)
            await self._member_event(uow, "project.member_removed", access.project, caller, member)
            await uow.commit()

    async def _member_event(
        self,
        uow: UnitOfWork,
        name: str,
        project: Project,
        caller: Caller,
        member: Member,
        **extra: Any,
    ) -> None:
        """Memberships belong to the project aggregate: a change bumps its version."""
        project.touch(datetime.now(UTC))
        await uow.projects.update(project)
        data = MEMBER_EVENTS[name](
            project_id=project.id,
            project_key=project.key,
            user_id=member.user_id,
            role=member.role.value,
            **extra,
        )
        await self._record(uow, name, project, caller, data)
