from __future__ import annotations

from bugtracker_shared.uow import OutboxUnitOfWork

from bugtracker_projects.application.ports import MemberRepository, ProjectRepository
from bugtracker_projects.infrastructure.repositories import (
    SqlMemberRepository,
    SqlProjectRepository,
)
from bugtracker_projects.infrastructure.tables import outbox


class ProjectsUnitOfWork(OutboxUnitOfWork):
    outbox_table = outbox
    projects: ProjectRepository
    members: MemberRepository

    def _bind_repositories(self) -> None:
        self.projects = SqlProjectRepository(self.session)
        self.members = SqlMemberRepository(self.session)
