from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.pagination import DEFAULT_LIMIT
from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    Cursor,
    IfNoneMatch,
    Limit,
    Paging,
    from_app_state,
    internal_router,
    page_of,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Query, Request, Response

from bugtracker_projects.api.schemas import (
    AddMemberRequest,
    ChangeRoleRequest,
    CoMembersResponse,
    CreateProjectRequest,
    MemberPage,
    MemberResponse,
    MembershipsPage,
    MyAccessResponse,
    ProjectPage,
    ProjectResponse,
    UpdateProjectRequest,
    ViewMember,
    ViewProject,
)
from bugtracker_projects.application.use_cases import ProjectChanges, ProjectUseCases
from bugtracker_projects.domain.projects import Caller


async def caller(principal: CurrentPrincipal) -> Caller:
    return Caller(user_id=principal.user_id, is_admin=principal.is_admin, token=principal.token)


UseCases = Annotated[ProjectUseCases, Depends(from_app_state(ProjectUseCases))]
CurrentCaller = Annotated[Caller, Depends(caller)]

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])
internal = internal_router()


@router.post("", status_code=201)
async def create_project(
    body: CreateProjectRequest, who: CurrentCaller, cases: UseCases, response: Response
) -> ProjectResponse:
    project = await cases.create_project(
        who, key=body.key, name=body.name, description=body.description
    )
    response.headers["Location"] = f"/api/v1/projects/{project.id}"
    return versioned(response, ProjectResponse.of(project))


@router.get("")
async def list_projects(
    who: CurrentCaller,
    cases: UseCases,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    archived: bool = False,
) -> ProjectPage:
    # Not `Paging`: its parameters would come after `q` and `archived` in the OpenAPI
    # document.
    page = await cases.list_projects(who, limit=limit, cursor=cursor, archived=archived, q=q)
    return page_of(request, response, ProjectPage, page, ProjectResponse.of)


@router.get("/{project_ref}", response_model=ProjectResponse)
async def get_project(
    project_ref: str,
    who: CurrentCaller,
    cases: UseCases,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> ProjectResponse | Response:
    project = (await cases.access(who, project_ref)).project
    return unless_not_modified(response, if_none_match, ProjectResponse.of(project))


@router.patch("/{project_ref}")
async def update_project(
    project_ref: str,
    body: UpdateProjectRequest,
    who: CurrentCaller,
    cases: UseCases,
    write: Conditional,
) -> ProjectResponse:
    project = await cases.update_project(
        who,
        project_ref,
        ProjectChanges(name=body.name, description=body.description),
        expected_version=write.expected_version,
    )
    return write.answer(ProjectResponse.of(project))


@router.post("/{project_ref}/archive")
async def archive_project(
    project_ref: str,
    who: CurrentCaller,
    cases: UseCases,
    write: Conditional,
) -> ProjectResponse:
    project = await cases.set_archived(
        who, project_ref, archived=True, expected_version=write.expected_version
    )
    return write.answer(ProjectResponse.of(project))


@router.post("/{project_ref}/unarchive")
async def unarchive_project(
    project_ref: str,
    who: CurrentCaller,
    cases: UseCases,
    write: Conditional,
) -> ProjectResponse:
    project = await cases.set_archived(
        who, project_ref, archived=False, expected_version=write.expected_version
    )
    return write.answer(ProjectResponse.of(project))


@router.delete("/{project_ref}", status_code=204)
async def delete_project(project_ref: str, who: CurrentCaller, cases: UseCases) -> None:
    """Soft delete: the project disappears for everyone; an owner or admin may restore it
    within 30 days."""
    await cases.delete_project(who, project_ref)


@router.post("/{project_ref}/restore")
async def restore_project(
    project_ref: str, who: CurrentCaller, cases: UseCases, response: Response
) -> ProjectResponse:
    return versioned(response, ProjectResponse.of(await cases.restore_project(who, project_ref)))


@router.get("/{project_ref}/members/me")
async def my_access(project_ref: str, who: CurrentCaller, cases: UseCases) -> MyAccessResponse:
    access = await cases.access(who, project_ref)
    return MyAccessResponse(
        project_id=access.project.id,
        project_key=access.project.key,
        archived=access.project.is_archived,
        role=access.role,
        permissions=sorted(access.permissions),
    )


@router.get("/{project_ref}/members")
async def list_members(
    project_ref: str, who: CurrentCaller, cases: UseCases, paging: Paging
) -> MemberPage:
    page = await cases.list_members(who, project_ref, limit=paging.limit, cursor=paging.cursor)
    return paging.answer(MemberPage, page, MemberResponse.of)


@router.post("/{project_ref}/members", status_code=201)
async def add_member(
    project_ref: str,
    body: AddMemberRequest,
    who: CurrentCaller,
    cases: UseCases,
    response: Response,
) -> MemberResponse:
    member = await cases.add_member(who, project_ref, user_id=body.user_id, role=body.role)
    response.headers["Location"] = f"/api/v1/projects/{member.project_id}/members/{member.user_id}"
    return MemberResponse.of(member)


@router.get("/{project_ref}/members/{user_id}")
async def get_member(
    project_ref: str, user_id: uuid.UUID, who: CurrentCaller, cases: UseCases
) -> MemberResponse:
    return MemberResponse.of(await cases.get_member(who, project_ref, user_id))


@router.patch("/{project_ref}/members/{user_id}")
async def change_role(
    project_ref: str,
    user_id: uuid.UUID,
    body: ChangeRoleRequest,
    who: CurrentCaller,
    cases: UseCases,
) -> MemberResponse:
    return MemberResponse.of(await cases.change_role(who, project_ref, user_id, body.role))


@router.delete("/{project_ref}/members/{user_id}", status_code=204)
async def remove_member(
    project_ref: str, user_id: uuid.UUID, who: CurrentCaller, cases: UseCases
) -> None:
    """Maintainers remove members; any member may remove themself (leave)."""
    await cases.remove_member(who, project_ref, user_id)


@internal.get("/memberships")
async def memberships(
    cases: UseCases,
    after: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> MembershipsPage:
    """Every project (deleted ones too) with its members' roles, a page at a time by id:
    what the other services seed their membership views from (ADR 0023)."""
    page = await cases.memberships(after=after, limit=limit)
    return MembershipsPage(
        items=[
            ViewProject.from_attributes(
                p, members=[ViewMember(user_id=u, role=r) for u, r in p.members.items()]
            )
            for p in page
        ],
        next_after=page[-1].id if len(page) == limit else None,
    )


@internal.get("/users/{user_id}/co-members")
async def co_members(user_id: uuid.UUID, cases: UseCases) -> CoMembersResponse:
    """Who shares a project (not deleted) with this user: what auth's user directory
    lets them find, emails included (ADR 0028)."""
    return CoMembersResponse(user_ids=await cases.co_members(user_id))


@internal.get("/projects/{project_id}/maintainers")
async def maintainers(project_id: uuid.UUID, cases: UseCases) -> CoMembersResponse:
    """The project's maintainers and owners: whom the webhooks service tells that one of
    the project's webhooks was turned off (docs/adr/0043)."""
    return CoMembersResponse(user_ids=await cases.maintainers(project_id))


# The error answers of each operation that its route does not reveal (the OpenAPI
# document derives the rest: bugtracker_shared.openapi_answers, docs/adr/0031).
_WRITE = {403, 409}  # the role does not allow it; last owner, archived, taken, expired
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/projects"): {409},
    ("PATCH", "/api/v1/projects/{project_ref}"): _WRITE,
    ("DELETE", "/api/v1/projects/{project_ref}"): _WRITE,
    ("POST", "/api/v1/projects/{project_ref}/archive"): _WRITE,
    ("POST", "/api/v1/projects/{project_ref}/unarchive"): _WRITE,
    ("POST", "/api/v1/projects/{project_ref}/restore"): _WRITE,
    ("POST", "/api/v1/projects/{project_ref}/members"): _WRITE,
    ("PATCH", "/api/v1/projects/{project_ref}/members/{user_id}"): _WRITE,
    ("DELETE", "/api/v1/projects/{project_ref}/members/{user_id}"): _WRITE,
}
VERSIONED = ("ProjectResponse",)  # answered with an ETag
