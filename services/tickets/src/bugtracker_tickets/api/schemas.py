from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import StrictModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bugtracker_tickets.application.markdown import render
from bugtracker_tickets.domain.tickets import Comment, Priority, Status, Ticket, TicketType
from bugtracker_tickets.domain.workflow import Resolution

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class CreateTicketRequest(StrictModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Login fails with a long password",
                    "description": "A 200-character password answers 500.",
                    "type": "bug",
                    "priority": "high",
                    "labels": ["auth"],
                    "due_date": "2026-12-01",
                }
            ]
        }
    )

    title: Title
    description: Annotated[str, Field(max_length=50_000)] = ""
    type: TicketType = TicketType.BUG
    priority: Priority = Priority.MEDIUM
    labels: Annotated[list[Label], Field(default_factory=list, max_length=20)]
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None


class UpdateTicketRequest(StrictModel):
    """Only the fields present change; `due_date: null` clears the due date."""

    title: Title | None = None
    description: Annotated[str | None, Field(max_length=50_000)] = None
    type: TicketType | None = None
    priority: Priority | None = None
    labels: Annotated[list[Label] | None, Field(max_length=20)] = None
    due_date: date | None = None

    @model_validator(mode="after")
    def no_nulls_but_due_date(self) -> UpdateTicketRequest:
        for name in self.model_fields_set - {"due_date"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class AssignRequest(StrictModel):
    assignee_id: uuid.UUID | None


class TransitionRequest(StrictModel):
    to: Status
    resolution: Resolution | None = None
    comment: Annotated[str | None, Field(min_length=1, max_length=20_000)] = None


class TransitionResponse(BaseModel):
    to: Status
    requires_resolution: bool


class CommentRequest(StrictModel):
    body: Annotated[str, Field(min_length=1, max_length=20_000)]


class CommentResponse(BaseModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    body_html: str
    mentions: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, comment: Comment) -> CommentResponse:
        return cls(
            id=comment.id,
            ticket_id=comment.ticket_id,
            author_id=comment.author_id,
            body=comment.body,
            body_html=comment.body_html if comment.body_html is not None else render(comment.body),
            mentions=comment.mentions,
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            version=comment.version,
        )


class CommentPage(Page[CommentResponse]):
    pass


class HistoryItem(BaseModel):
    at: datetime
    actor_id: uuid.UUID
    field: str
    from_: Any = Field(serialization_alias="from")
    to: Any


class HistoryPage(Page[HistoryItem]):
    pass


class WatchersResponse(BaseModel):
    items: list[uuid.UUID]


class WatchingResponse(BaseModel):
    ticket_id: uuid.UUID
    user_id: uuid.UUID
    watching: bool


class TicketResponse(BaseModel):
    id: uuid.UUID
    key: str
    project_id: uuid.UUID
    title: str
    description: str
    description_html: str
    type: TicketType
    priority: Priority
    status: Status
    resolution: str | None
    reporter_id: uuid.UUID
    assignee_id: uuid.UUID | None
    labels: list[str]
    due_date: date | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, ticket: Ticket) -> TicketResponse:
        return cls(
            id=ticket.id,
            key=ticket.key,
            project_id=ticket.project_id,
            title=ticket.title,
            description=ticket.description,
            description_html=(
                ticket.description_html
                if ticket.description_html is not None
                else render(ticket.description)
            ),
            type=ticket.type,
            priority=ticket.priority,
            status=ticket.status,
            resolution=ticket.resolution,
            reporter_id=ticket.reporter_id,
            assignee_id=ticket.assignee_id,
            labels=ticket.labels,
            due_date=ticket.due_date,
            created_at=ticket.created_at,
            updated_at=ticket.updated_at,
            version=ticket.version,
        )


class TicketPage(Page[TicketResponse]):
    total: Annotated[
        int | None,
        Field(description="with include_total=true", exclude_if=lambda total: total is None),
    ] = None
