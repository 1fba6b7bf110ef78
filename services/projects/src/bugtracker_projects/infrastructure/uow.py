from __future__ import annotations

from bugtracker_shared.db import SqlAlchemyUnitOfWork
from bugtracker_shared.outbox import OutboxWriter
from bugtracker_shared.ports import EventSink

from bugtracker_projects.application.ports import MemberRepository, ProjectRepository
from bugtracker_projects.infrastructure.repositories import (
    SqlMemberRepository,
    SqlProjectRepository,
)
from bugtracker_projects.infrastructure.tables import outbox


class ProjectsUnitOfWork(SqlAlchemyUnitOfWork):
    projects: ProjectRepository
    members: MemberRepository
    outbox: EventSink

    def _bind_repositories(self) -> None:
        self.projects = SqlProjectRepository(self.session)
        self.members = SqlMemberRepository(self.session)
        self.outbox = OutboxWriter(self.session, outbox)
