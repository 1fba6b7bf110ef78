"""The relations of a ticket: `/api/v1/tickets/{ticket_ref}/relations` (docs/adr/0039)."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.web import CurrentPrincipal, Paging, from_app_state
from fastapi import APIRouter, Depends, Response

from bugtracker_tickets.api.relation_schemas import (
    RelationPage,
    RelationRequest,
    RelationResponse,
)
from bugtracker_tickets.application.relations import RelationUseCases

Relations = Annotated[RelationUseCases, Depends(from_app_state(RelationUseCases, "relation_cases"))]

router = APIRouter(prefix="/api/v1", tags=["tickets"])


@router.get("/tickets/{ticket_ref}/relations")
async def list_relations(
    ticket_ref: str, principal: CurrentPrincipal, relations: Relations, paging: Paging
) -> RelationPage:
    """The ticket's relations seen from it, oldest first (only those whose other ticket
    the caller may see)."""
    page = await relations.list_relations(
        principal, ticket_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(RelationPage, page, RelationResponse.of)


@router.post("/tickets/{ticket_ref}/relations", status_code=201)
async def add_relation(
    ticket_ref: str,
    body: RelationRequest,
    principal: CurrentPrincipal,
    relations: Relations,
    response: Response,
) -> RelationResponse:
    """Relate the ticket to another one (the other sees the inverse type)."""
    related = await relations.relate(principal, ticket_ref, body.type, body.other_ref())
    response.headers["Location"] = (
        f"/api/v1/tickets/{related.ticket_id}/relations/{related.relation.id}"
    )
    return RelationResponse.of(related.relation)


@router.delete("/tickets/{ticket_ref}/relations/{relation_id}", status_code=204)
async def remove_relation(
    ticket_ref: str, relation_id: uuid.UUID, principal: CurrentPrincipal, relations: Relations
) -> None:
    await relations.unrelate(principal, ticket_ref, relation_id)


# The error answers of each operation that its route does not reveal (docs/adr/0031):
# the role does not allow it; archived project, relation exists, relation cycle.
_WRITE = {403, 409}
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/tickets/{ticket_ref}/relations"): _WRITE,
    ("DELETE", "/api/v1/tickets/{ticket_ref}/relations/{relation_id}"): _WRITE,
}
