"""Request and response bodies of the saved filter endpoints (docs/adr/0045)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import Field, StringConstraints, model_validator

from bugtracker_tickets.application.saved_filters import FilterChanges, FilterDraft
from bugtracker_tickets.domain.saved_filters import SavedFilter

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    Field(description='A ticket query (docs/api.md "Find tickets")'),
]


class CreateFilterRequest(StrictModel):
    model_config = example(
        name="My open bugs",
        query="type:bug is:open assignee:@me sort:priority-desc",
        project_id="7d7c6a3e-3f0b-4c55-9d8e-6f3b0a1c2d4e",
        shared=False,
    )

    name: Name
    query: QueryText
    project_id: uuid.UUID | None = Field(
        default=None, description="The project it searches; none: every project you can see"
    )
    shared: bool = Field(default=False, description="Visible to the project's members")

    def draft(self) -> FilterDraft:
        return FilterDraft(self.name, self.query, self.project_id, self.shared)


class UpdateFilterRequest(StrictModel):
    """Only the fields present change; `project_id: null` makes it search every project."""

    name: Name | None = None
    query: QueryText | None = None
    project_id: uuid.UUID | None = None
    shared: bool | None = None

    @model_validator(mode="after")
    def no_nulls_but_project(self) -> UpdateFilterRequest:
        for name in self.model_fields_set - {"project_id"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> FilterChanges:
        return FilterChanges(
            name=self.name,
            query=self.query,
            shared=self.shared,
            project_id=self.project_id,
            project_given="project_id" in self.model_fields_set,
        )


class FilterResponse(ResponseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    query: str
    project_id: uuid.UUID | None
    shared: bool
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, saved: SavedFilter) -> FilterResponse:
        return cls.from_attributes(saved)


class FilterPage(Page[FilterResponse]):
    pass
