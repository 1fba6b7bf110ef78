"""In-memory fakes of the projects service's ports (tests only, not in the runtime package).

`FakeProjectsDatabase` is the committed state. A `FakeUnitOfWork` works on a private copy
of it taken when its block is entered; `commit` makes the copy the database's state, and
leaving the block without it discards every change (`bugtracker_testkit.in_memory`).
Repositories hand out copies, so a loaded project changes only when it is written back.
`FakeUserDirectory` plays auth, `FakeAccessReader` the driver reads on the committed state.

`ProjectsWorld` wires the real `ProjectUseCases` to them (the `world` fixture of
`tests/unit/conftest.py`). `_conforms` assigns each fake to its Protocol, so `mypy` (the
module is in its `files`) reports a fake that drifts from its port.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bugtracker_projects.application.ports import (
    AccessReader,
    MemberRepository,
    ProjectFilter,
    ProjectMemberships,
    ProjectRepository,
    UnitOfWork,
    UserDirectory,
    UserInfo,
)
from bugtracker_projects.application.use_cases import ProjectUseCases
from bugtracker_projects.domain.projects import Caller, Member, Project
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.ports import EventSink
from bugtracker_testkit.in_memory import (
    InMemoryOutbox,
    InMemoryOutboxDatabase,
    InMemoryUnitOfWork,
)


@dataclass
class ProjectsState:
    projects: dict[uuid.UUID, Project] = field(default_factory=dict)
    members: dict[tuple[uuid.UUID, uuid.UUID], Member] = field(default_factory=dict)
    outbox: list[CloudEvent] = field(default_factory=list)


class FakeProjectsDatabase(InMemoryOutboxDatabase[ProjectsState]):
    def __init__(self) -> None:
        super().__init__(ProjectsState())

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def project(self, project_id: uuid.UUID) -> Project:
        return copy.deepcopy(self.state.projects[project_id])

    def roles(self, project_id: uuid.UUID) -> dict[uuid.UUID, ProjectRole]:
        return {
            user_id: member.role
            for (pid, user_id), member in self.state.members.items()
            if pid == project_id
        }


class FakeProjectRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, project: Project) -> None:
        projects = self._uow.state.projects
        if project.id in projects or any(p.key == project.key for p in projects.values()):
            raise ValueError(f"duplicate project {project.id} / {project.key}")  # unique keys
        projects[project.id] = copy.deepcopy(project)

    async def get(self, project_id: uuid.UUID, *, for_update: bool = False) -> Project | None:
        project = self._uow.state.projects.get(project_id)
        return copy.deepcopy(project) if project else None

    async def get_by_key(self, key: str, *, for_update: bool = False) -> Project | None:
        for project in self._uow.state.projects.values():
            if project.key == key:
                return copy.deepcopy(project)
        return None

    async def update(self, project: Project) -> None:
        stored = self._uow.state.projects.get(project.id)
        if stored is None:
            return
        for name in ("name", "description", "updated_at", "archived_at", "deleted_at", "version"):
            setattr(stored, name, getattr(project, name))

    async def list(
        self, where: ProjectFilter, *, after_key: str | None, limit: int
    ) -> list[Project]:
        state = self._uow.state
        q = (where.q or "").lower()
        found = sorted(
            (
                p
                for p in state.projects.values()
                if not p.is_deleted
                and p.is_archived == where.archived
                and (where.member_id is None or (p.id, where.member_id) in state.members)
                and (not q or q in p.key.lower() or q in p.name.lower())
                and (after_key is None or p.key > after_key)
            ),
            key=lambda p: p.key,
        )
        return copy.deepcopy(found[:limit])


class FakeMemberRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, member: Member) -> None:
        ident = (member.project_id, member.user_id)
        if ident in self._uow.state.members:
            raise ValueError(f"duplicate membership {ident}")
        self._uow.state.members[ident] = copy.deepcopy(member)

    async def role_of(self, project_id: uuid.UUID, user_id: uuid.UUID) -> ProjectRole | None:
        member = self._uow.state.members.get((project_id, user_id))
        return member.role if member else None

    async def get(self, project_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
        member = self._uow.state.members.get((project_id, user_id))
        return copy.deepcopy(member) if member else None

    async def list(
        self, project_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Member]:
        found = sorted(
            (m for m in self._uow.state.members.values() if m.project_id == project_id),
            key=lambda m: (m.added_at, m.user_id),
        )
        if after is not None:
            found = [m for m in found if (m.added_at, m.user_id) > after]
        return copy.deepcopy(found[:limit])

    async def count_owners(self, project_id: uuid.UUID) -> int:
        return sum(
            m.project_id == project_id and m.role is ProjectRole.OWNER
            for m in self._uow.state.members.values()
        )

    async def update_role(self, member: Member) -> None:
        stored = self._uow.state.members.get((member.project_id, member.user_id))
        if stored is not None:
            stored.role = member.role

    async def remove(self, project_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self._uow.state.members.pop((project_id, user_id), None)


class FakeOutbox(InMemoryOutbox[ProjectsState]):
    pass


class FakeUnitOfWork(InMemoryUnitOfWork[ProjectsState]):
    """One transaction: a private copy of the database's state, published by `commit`
    (at most once, inside the block) and dropped otherwise (`bugtracker_testkit.in_memory`)."""

    projects: ProjectRepository
    members: MemberRepository
    outbox: EventSink

    def __init__(self, database: FakeProjectsDatabase) -> None:
        super().__init__(database)
        self.projects = FakeProjectRepository(self)
        self.members = FakeMemberRepository(self)
        self.outbox = FakeOutbox(self)


class FakeUserDirectory:
    """Auth's user lookup."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, UserInfo] = {}

    def add(self, display_name: str, *, is_active: bool = True) -> uuid.UUID:
        user_id = uuid.uuid4()
        self.users[user_id] = UserInfo(
            user_id, display_name, is_active, f"{display_name.lower()}@example.com"
        )
        return user_id

    async def get(self, user_id: uuid.UUID, *, token: str) -> UserInfo | None:
        return self.users.get(user_id)


class FakeAccessReader:
    """The reads outside a unit of work, on the committed state."""

    def __init__(self, database: FakeProjectsDatabase) -> None:
        self.database = database

    async def project_and_role(
        self, ref: uuid.UUID | str, user_id: uuid.UUID
    ) -> tuple[Project, ProjectRole | None] | None:
        state = self.database.state
        for project in state.projects.values():
            if ref in (project.id, project.key):
                member = state.members.get((project.id, user_id))
                return copy.deepcopy(project), member.role if member else None
        return None

    async def memberships(self, *, after: uuid.UUID | None, limit: int) -> list[ProjectMemberships]:
        state = self.database.state
        found = sorted(
            (p for p in state.projects.values() if after is None or p.id > after),
            key=lambda p: p.id,
        )[:limit]
        return [
            ProjectMemberships(
                id=p.id,
                key=p.key,
                archived=p.is_archived,
                deleted=p.is_deleted,
                version=p.version,
                members=self.database.roles(p.id),
            )
            for p in found
        ]

    async def co_members(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        state = self.database.state
        shared = {
            pid
            for (pid, uid) in state.members
            if uid == user_id and not state.projects[pid].is_deleted
        }
        return sorted({uid for (pid, uid) in state.members if pid in shared and uid != user_id})

    async def members_with_roles(
        self, project_id: uuid.UUID, roles: list[ProjectRole]
    ) -> list[uuid.UUID]:
        return sorted(
            uid
            for (pid, uid), member in self.database.state.members.items()
            if pid == project_id and member.role in roles
        )


@dataclass
class ProjectsWorld:
    """The real ProjectUseCases on the fakes, and helpers to set up a scene."""

    database: FakeProjectsDatabase = field(default_factory=FakeProjectsDatabase)
    users: FakeUserDirectory = field(default_factory=FakeUserDirectory)
    projects: ProjectUseCases = field(init=False)

    def __post_init__(self) -> None:
        self.projects = ProjectUseCases(
            uow=self.database.unit_of_work,
            users=self.users,
            reads=FakeAccessReader(self.database),
        )

    def caller(self, display_name: str, *, admin: bool = False) -> Caller:
        """A new active user of the user directory, as a caller."""
        return Caller(user_id=self.users.add(display_name), is_admin=admin, token="token")

    async def project_with(
        self, key: str = "BUG", **roles: ProjectRole
    ) -> tuple[Project, dict[str, Caller]]:
        """A project created by `owner` (a new user), with a new member per keyword."""
        people = {"owner": self.caller("owner")}
        project = await self.projects.create_project(
            people["owner"], key=key, name=f"{key} project", description=""
        )
        for name, role in roles.items():
            people[name] = self.caller(name)
            await self.projects.add_member(
                people["owner"], key, user_id=people[name].user_id, role=role
            )
        return self.database.project(project.id), people


def _conforms(database: FakeProjectsDatabase) -> None:
    """Never called: mypy checks that each fake satisfies the Protocol it plays."""
    uow: UnitOfWork = FakeUnitOfWork(database)
    make_uow: Callable[[], UnitOfWork] = database.unit_of_work
    fake = FakeUnitOfWork(database)
    repositories: tuple[ProjectRepository, MemberRepository, EventSink] = (
        FakeProjectRepository(fake),
        FakeMemberRepository(fake),
        FakeOutbox(fake),
    )
    users: UserDirectory = FakeUserDirectory()
    reads: AccessReader = FakeAccessReader(database)
    del uow, make_uow, repositories, users, reads
