"""The milestone endpoints (docs/adr/0039): a project's milestones, and each by its id."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    IfNoneMatch,
    Paging,
    from_app_state,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Query, Response

from bugtracker_tickets.api.milestone_schemas import (
    CreateMilestoneRequest,
    MilestonePage,
    MilestoneResponse,
    UpdateMilestoneRequest,
)
from bugtracker_tickets.application.milestones import (
    MilestoneUseCases,
    NewMilestone,
    StateFilter,
)

Milestones = Annotated[
    MilestoneUseCases, Depends(from_app_state(MilestoneUseCases, "milestone_cases"))
]

router = APIRouter(prefix="/api/v1", tags=["milestones"])


@router.post("/projects/{project_ref}/milestones", status_code=201)
async def create_milestone(
    project_ref: str,
    body: CreateMilestoneRequest,
    principal: CurrentPrincipal,
    cases: Milestones,
    response: Response,
) -> MilestoneResponse:
    milestone = await cases.create_milestone(
        principal,
        project_ref,
        NewMilestone(name=body.name, description=body.description, due_date=body.due_date),
    )
    response.headers["Location"] = f"/api/v1/milestones/{milestone.id}"
    return versioned(response, MilestoneResponse.of(milestone))


@router.get("/projects/{project_ref}/milestones")
async def list_milestones(
    project_ref: str,
    principal: CurrentPrincipal,
    cases: Milestones,
    paging: Paging,
    state: Annotated[StateFilter, Query(description="open (default), closed or all")] = "open",
) -> MilestonePage:
    """By due date (none last), then name."""
    listing = await cases.list_milestones(
        principal, project_ref, state=state, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(MilestonePage, listing, MilestoneResponse.of)


@router.get("/milestones/{milestone_id}", response_model=MilestoneResponse)
async def get_milestone(
    milestone_id: uuid.UUID,
    principal: CurrentPrincipal,
    cases: Milestones,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> MilestoneResponse | Response:
    milestone = await cases.get_milestone(principal, milestone_id)
    return unless_not_modified(response, if_none_match, MilestoneResponse.of(milestone))


@router.patch("/milestones/{milestone_id}")
async def update_milestone(
    milestone_id: uuid.UUID,
    body: UpdateMilestoneRequest,
    principal: CurrentPrincipal,
    cases: Milestones,
    write: Conditional,
) -> MilestoneResponse:
    milestone = await cases.update_milestone(
        principal, milestone_id, body.patch(), expected_version=write.expected_version
    )
    return write.answer(MilestoneResponse.of(milestone))


@router.delete("/milestones/{milestone_id}", status_code=204)
async def delete_milestone(
    milestone_id: uuid.UUID, principal: CurrentPrincipal, cases: Milestones
) -> None:
    """Its tickets lose it: the first batch at once, the rest shortly after."""
    await cases.delete_milestone(principal, milestone_id)


# The error answers each operation's route does not reveal (docs/adr/0031): the role
# does not allow it (403); the project is archived or the name is taken (409).
_WRITE = {403, 409}
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/projects/{project_ref}/milestones"): _WRITE,
    ("PATCH", "/api/v1/milestones/{milestone_id}"): _WRITE,
    ("DELETE", "/api/v1/milestones/{milestone_id}"): _WRITE,
}
VERSIONED = ("MilestoneResponse",)  # answered with an ETag
