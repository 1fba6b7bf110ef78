from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, next_link
from bugtracker_shared.web import CurrentPrincipal
from fastapi import APIRouter, Depends, Query, Request, Response

from bugtracker_projects.api.schemas import (
    AddMemberRequest,
    CreateProjectRequest,
    MemberPage,
    MemberResponse,
    MyAccessResponse,
    ProjectPage,
    ProjectResponse,
)
from bugtracker_projects.application.use_cases import ProjectUseCases
from bugtracker_projects.domain.projects import Caller


def use_cases(request: Request) -> ProjectUseCases:
    cases: ProjectUseCases = request.app.state.use_cases
    return cases


def caller(principal: CurrentPrincipal) -> Caller:
    return Caller(user_id=principal.user_id, is_admin=principal.is_admin, token=principal.token)


UseCases = Annotated[ProjectUseCases, Depends(use_cases)]
CurrentCaller = Annotated[Caller, Depends(caller)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


def _link(request: Request, response: Response, next_cursor: str | None) -> None:
    link = next_link(request.url.path, request.query_params.multi_items(), next_cursor)
    if link:
        response.headers["Link"] = link


@router.post("", status_code=201)
async def create_project(
    body: CreateProjectRequest, who: CurrentCaller, cases: UseCases, response: Response
) -> ProjectResponse:
    project = await cases.create_project(
        who, key=body.key, name=body.name, description=body.description
    )
    response.headers["Location"] = f"/api/v1/projects/{project.id}"
    return ProjectResponse.of(project)


@router.get("")
async def list_projects(
    who: CurrentCaller,
    cases: UseCases,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ProjectPage:
    page = await cases.list_projects(who, limit=limit, cursor=cursor)
    _link(request, response, page.next_cursor)
    return ProjectPage(
        items=[ProjectResponse.of(p) for p in page.items], next_cursor=page.next_cursor
    )


@router.get("/{project_ref}")
async def get_project(project_ref: str, who: CurrentCaller, cases: UseCases) -> ProjectResponse:
    return ProjectResponse.of((await cases.access(who, project_ref)).project)


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
    project_ref: str,
    who: CurrentCaller,
    cases: UseCases,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MemberPage:
    page = await cases.list_members(who, project_ref, limit=limit, cursor=cursor)
    _link(request, response, page.next_cursor)
    return MemberPage(
        items=[MemberResponse.of(m) for m in page.items], next_cursor=page.next_cursor
    )


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
