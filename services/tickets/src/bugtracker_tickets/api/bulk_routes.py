"""POST /api/v1/projects/{project_ref}/tickets/bulk: one change to many tickets, all or
nothing (docs/adr/0039)."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.web import CurrentPrincipal, StrictModel, example, from_app_state
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator

from bugtracker_tickets.api.schemas import ConfigKey, Label, TicketResponse
from bugtracker_tickets.application.bulk import MAX_BULK_TICKETS, BulkChange, BulkUseCases
from bugtracker_tickets.domain.tickets import KEEP, Priority
from bugtracker_tickets.domain.workflow import Resolution

Bulk = Annotated[BulkUseCases, Depends(from_app_state(BulkUseCases, "bulk_cases"))]
TicketRef = Annotated[str, Field(min_length=1, max_length=64)]

router = APIRouter(prefix="/api/v1", tags=["tickets"])


class BulkSet(StrictModel):
    """The change every listed ticket takes; null `assignee_id` or `milestone_id` clears
    it."""

    status: ConfigKey | None = None
    resolution: Resolution | None = None
    priority: Priority | None = None
    assignee_id: uuid.UUID | None = None
    milestone_id: uuid.UUID | None = None
    labels_add: Annotated[list[Label], Field(max_length=20)] = Field(default_factory=list)
    labels_remove: Annotated[list[Label], Field(max_length=20)] = Field(default_factory=list)

    @model_validator(mode="after")
    def something_to_change(self) -> BulkSet:
        if not self.model_fields_set:
            raise ValueError("set at least one field")
        for name in self.model_fields_set & {"status", "priority"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.resolution is not None and self.status is None:
            raise ValueError("resolution goes with status")
        return self

    def change(self) -> BulkChange:
        given = self.model_fields_set
        return BulkChange(
            status=self.status,
            resolution=self.resolution,
            priority=self.priority,
            assignee_id=self.assignee_id if "assignee_id" in given else KEEP,
            milestone_id=self.milestone_id if "milestone_id" in given else KEEP,
            labels_add=tuple(self.labels_add),
            labels_remove=tuple(self.labels_remove),
        )


class BulkRequest(StrictModel):
    model_config = example(
        tickets=["BUG-12", "BUG-14"],
        set={"assignee_id": "5f0c6a39-2f43-4b1e-9d68-0a3c1f7e2b11", "labels_add": ["1.2"]},
    )

    tickets: Annotated[list[TicketRef], Field(min_length=1, max_length=MAX_BULK_TICKETS)]
    set_: BulkSet = Field(alias="set")

    @model_validator(mode="after")
    def each_ticket_once(self) -> BulkRequest:
        if len({ref.upper() for ref in self.tickets}) != len(self.tickets):
            raise ValueError("each ticket may be listed once")
        return self


class BulkResponse(BaseModel):
    items: list[TicketResponse]


@router.post("/projects/{project_ref}/tickets/bulk")
async def bulk_change(
    project_ref: str, body: BulkRequest, principal: CurrentPrincipal, bulk: Bulk
) -> BulkResponse:
    """Change up to 100 tickets at once, all or nothing: when any ticket cannot take the
    change, nothing changes and the 422 lists each ticket's error."""
    tickets = await bulk.bulk_change(principal, project_ref, body.tickets, body.set_.change())
    return BulkResponse(items=[TicketResponse.of(ticket) for ticket in tickets])


ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/projects/{project_ref}/tickets/bulk"): {403, 409},
}
