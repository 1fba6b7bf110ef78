"""Request and response bodies of the milestone endpoints (docs/adr/0039)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, Field, StringConstraints, model_validator

from bugtracker_tickets.application.milestones import MilestonePatch
from bugtracker_tickets.domain.planning import Milestone, MilestoneState
from bugtracker_tickets.domain.tickets import KEEP

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=10_000)]


class CreateMilestoneRequest(StrictModel):
    model_config = example(name="1.0", description="The first release.", due_date="2027-03-01")

    name: Name
    description: Description = ""
    due_date: date | None = None


class UpdateMilestoneRequest(StrictModel):
    """Only the fields present change; `due_date: null` clears the due date."""

    name: Name | None = None
    description: Description | None = None
    due_date: date | None = None
    state: MilestoneState | None = None

    @model_validator(mode="after")
    def no_nulls_but_due_date(self) -> UpdateMilestoneRequest:
        for name in self.model_fields_set - {"due_date"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def patch(self) -> MilestonePatch:
        return MilestonePatch(
            name=KEEP if self.name is None else self.name,
            description=KEEP if self.description is None else self.description,
            due_date=self.due_date if "due_date" in self.model_fields_set else KEEP,
            state=KEEP if self.state is None else self.state,
        )


class MilestoneProgress(BaseModel):
    total: int = Field(description="Live tickets planned for the milestone")
    done: int = Field(description="Those of them in a done-category status (done, closed)")


class MilestoneResponse(ResponseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str
    due_date: date | None
    state: MilestoneState
    progress: MilestoneProgress
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, milestone: Milestone) -> MilestoneResponse:
        return cls.from_attributes(
            milestone, progress=MilestoneProgress(total=milestone.total, done=milestone.done)
        )


class MilestonePage(Page[MilestoneResponse]):
    pass
