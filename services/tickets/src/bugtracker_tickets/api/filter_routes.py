"""Saved filters (docs/adr/0045): a user's named queries, private or shared in a project,
and each one run as a ticket list (JSON pages, or an export by `Accept`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from bugtracker_shared.pagination import DEFAULT_LIMIT
from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    Cursor,
    IfNoneMatch,
    Limit,
    Paging,
    from_app_state,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from bugtracker_tickets.api.export import EXPORT_CONTENT
from bugtracker_tickets.api.filter_schemas import (
    CreateFilterRequest,
    FilterPage,
    FilterResponse,
    UpdateFilterRequest,
)
from bugtracker_tickets.api.routes import UseCases, list_or_export
from bugtracker_tickets.api.schemas import TicketPage
from bugtracker_tickets.application.saved_filters import SavedFilterUseCases
from bugtracker_tickets.application.use_cases import ListRequest

Filters = Annotated[
    SavedFilterUseCases, Depends(from_app_state(SavedFilterUseCases, "filter_cases"))
]

router = APIRouter(prefix="/api/v1", tags=["saved filters"])


@router.post("/filters", status_code=201)
async def create_filter(
    body: CreateFilterRequest, principal: CurrentPrincipal, cases: Filters, response: Response
) -> FilterResponse:
    saved = await cases.create(principal, body.draft())
    response.headers["Location"] = f"/api/v1/filters/{saved.id}"
    return versioned(response, FilterResponse.of(saved))


@router.get("/filters")
async def list_filters(
    principal: CurrentPrincipal,
    cases: Filters,
    paging: Paging,
    project: Annotated[
        str | None, Query(description="only this project's (its id or key)", max_length=64)
    ] = None,
) -> FilterPage:
    """Your own filters and those shared in projects you can see, by name."""
    listing = await cases.list(
        principal, project_ref=project, cursor=paging.cursor, limit=paging.limit
    )
    return paging.answer(FilterPage, listing, FilterResponse.of)


@router.get("/filters/{filter_id}", response_model=FilterResponse)
async def get_filter(
    filter_id: uuid.UUID,
    principal: CurrentPrincipal,
    cases: Filters,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> FilterResponse | Response:
    saved = await cases.get(principal, filter_id)
    return unless_not_modified(response, if_none_match, FilterResponse.of(saved))


@router.patch("/filters/{filter_id}")
async def update_filter(
    filter_id: uuid.UUID,
    body: UpdateFilterRequest,
    principal: CurrentPrincipal,
    cases: Filters,
    write: Conditional,
) -> FilterResponse:
    saved = await cases.update(
        principal, filter_id, body.changes(), expected_version=write.expected_version
    )
    return write.answer(FilterResponse.of(saved))


@router.delete("/filters/{filter_id}", status_code=204)
async def delete_filter(
    filter_id: uuid.UUID, principal: CurrentPrincipal, cases: Filters, write: Conditional
) -> None:
    await cases.delete(principal, filter_id, expected_version=write.expected_version)


@router.get("/filters/{filter_id}/tickets", response_model=TicketPage, responses=EXPORT_CONTENT)
async def run_filter(
    filter_id: uuid.UUID,
    principal: CurrentPrincipal,
    cases: Filters,
    tickets: UseCases,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    include_total: bool = False,
) -> TicketPage | StreamingResponse:
    """The filter's tickets, paginated as every ticket list (or exported by `Accept`)."""
    asked = ListRequest(limit=limit, cursor=cursor, include_total=include_total)
    project_ref, listed = await cases.run(principal, filter_id, asked)
    return await list_or_export(tickets, principal, project_ref, listed, request, response)


# The error answers each operation's route does not reveal (docs/adr/0031): another
# user's filter (403); a `?project=` the caller cannot see (404).
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("GET", "/api/v1/filters"): {404},
    ("PATCH", "/api/v1/filters/{filter_id}"): {403},
    ("DELETE", "/api/v1/filters/{filter_id}"): {403},
}
VERSIONED = ("FilterResponse",)  # answered with an ETag
