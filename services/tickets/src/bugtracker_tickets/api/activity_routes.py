"""A project's activity feed: `/api/v1/projects/{project_ref}/activity` (docs/adr/0046)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import CurrentPrincipal, Paging, ResponseModel, example, from_app_state
from fastapi import APIRouter, Depends
from pydantic import Field

from bugtracker_tickets.application.activity import ActivityUseCases
from bugtracker_tickets.domain.activity import ActivityEntry

Activity = Annotated[ActivityUseCases, Depends(from_app_state(ActivityUseCases, "activity_cases"))]

router = APIRouter(prefix="/api/v1", tags=["tickets"])


class ActivityItem(ResponseModel):
    """One change in the project, as its event told it."""

    model_config = example(
        at="2026-11-30T17:30:00.123456+00:00",
        actor_id="6f1c2a4e-3b8d-4c2f-9a71-0d5e8b9c7a10",
        kind="ticket.updated",
        ticket_key="BUG-12",
        summary="changed priority from low to high",
    )

    at: datetime
    actor_id: uuid.UUID | None = Field(
        description="Who made the change; null for a change the system made"
    )
    kind: str = Field(
        description="ticket.created, ticket.updated, ticket.assigned, ticket.transitioned, "
        "ticket.commented, ticket.deleted, ticket.restored, attachment.added, "
        "attachment.removed, member.added, member.role_changed or member.removed"
    )
    ticket_key: str | None = Field(
        default=None, description="The ticket it happened to; null for a member change"
    )
    summary: str = Field(description="A short sentence: what happened")

    @classmethod
    def of(cls, entry: ActivityEntry) -> ActivityItem:
        return cls.from_attributes(entry)


class ActivityPage(Page[ActivityItem]):
    pass


@router.get("/projects/{project_ref}/activity")
async def project_activity(
    project_ref: str, principal: CurrentPrincipal, activity: Activity, paging: Paging
) -> ActivityPage:
    """The project's changes, newest first: built from its events, so a change shows up
    a moment after it was made."""
    page = await activity.project_activity(
        principal, project_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(ActivityPage, page, ActivityItem.of)
