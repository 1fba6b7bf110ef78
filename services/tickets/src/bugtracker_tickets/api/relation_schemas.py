"""The request and response bodies of a ticket's relations."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import Field, StringConstraints, model_validator

from bugtracker_tickets.domain.planning import RelatedTicket, RelationType, TicketRef

TicketKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class RelationRequest(StrictModel):
    """The other ticket by `ticket_id` or by `key`, exactly one of the two."""

    model_config = example(type="blocks", key="BUG-2")

    type: RelationType = Field(
        description="As seen from this ticket: blocks, blocked_by, duplicates, duplicated_by "
        "or relates_to"
    )
    ticket_id: uuid.UUID | None = None
    key: TicketKey | None = None

    @model_validator(mode="after")
    def exactly_one_ticket(self) -> RelationRequest:
        if (self.ticket_id is None) == (self.key is None):
            raise ValueError("give exactly one of ticket_id and key")
        return self

    def other_ref(self) -> str:
        """The other ticket as a ticket reference (id or key)."""
        return str(self.ticket_id) if self.ticket_id is not None else str(self.key)


class RelatedTicketResponse(ResponseModel):
    id: uuid.UUID
    key: str
    title: str
    status: str
    project_id: uuid.UUID

    @classmethod
    def of(cls, ticket: TicketRef) -> RelatedTicketResponse:
        return cls.from_attributes(ticket)


class RelationResponse(ResponseModel):
    """A relation seen from one ticket: its type from this side, and the other ticket."""

    id: uuid.UUID
    type: RelationType
    ticket: RelatedTicketResponse

    @classmethod
    def of(cls, relation: RelatedTicket) -> RelationResponse:
        return cls(
            id=relation.id, type=relation.type, ticket=RelatedTicketResponse.of(relation.ticket)
        )


class RelationPage(Page[RelationResponse]):
    pass
