from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, Field, StringConstraints

from bugtracker_projects.domain.projects import PROJECT_KEY, Member, Project


class CreateProjectRequest(StrictModel):
    model_config = example(
        key="BUG",
        name="Bugtracker",
        description="Our own bugs.",
    )

    key: Annotated[str, Field(pattern=PROJECT_KEY.pattern, examples=["BUG"])]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=10_000)] = ""


class UpdateProjectRequest(StrictModel):
    name: Annotated[
        str | None, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = None
    description: Annotated[str | None, Field(max_length=10_000)] = None


class ChangeRoleRequest(StrictModel):
    role: ProjectRole


class AddMemberRequest(StrictModel):
    user_id: uuid.UUID
    role: ProjectRole


class ProjectResponse(ResponseModel):
    id: uuid.UUID
    key: str
    name: str
    description: str
    archived: bool
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, project: Project) -> ProjectResponse:
        return cls.from_attributes(project, archived=project.is_archived)


class MemberResponse(ResponseModel):
    user_id: uuid.UUID
    display_name: str
    email: str | None
    role: ProjectRole
    added_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberResponse:
        return cls.from_attributes(member)


class MyAccessResponse(BaseModel):
    """The caller's role here (null for an admin who is not a member) and what it allows."""

    project_id: uuid.UUID
    project_key: str
    archived: bool
    role: ProjectRole | None
    permissions: list[str]


class ProjectPage(Page[ProjectResponse]):
    pass


class MemberPage(Page[MemberResponse]):
    pass


class ViewMember(BaseModel):
    user_id: uuid.UUID
    role: ProjectRole


class ViewProject(ResponseModel):
    """A project as other services' membership views keep it (internal)."""

    id: uuid.UUID
    key: str
    archived: bool
    deleted: bool
    version: int
    members: list[ViewMember]


class MembershipsPage(BaseModel):
    items: list[ViewProject]
    next_after: uuid.UUID | None


class CoMembersResponse(BaseModel):
    """Who shares a project with a user (internal, for auth's user directory)."""

    user_ids: list[uuid.UUID]
