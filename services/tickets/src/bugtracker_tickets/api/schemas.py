from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from bugtracker_shared.web import StrictModel
from pydantic import BaseModel, Field, StringConstraints

from bugtracker_tickets.api.markdown import render
from bugtracker_tickets.domain.tickets import Priority, Status, Ticket, TicketType

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class CreateTicketRequest(StrictModel):
    title: Title
    description: Annotated[str, Field(max_length=50_000)] = ""
    type: TicketType = TicketType.BUG
    priority: Priority = Priority.MEDIUM
    labels: Annotated[list[Label], Field(default_factory=list, max_length=20)]
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None


class AssignRequest(StrictModel):
    assignee_id: uuid.UUID | None


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
            description_html=render(ticket.description),
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


class TicketPage(BaseModel):
    items: list[TicketResponse]
    next_cursor: str | None
