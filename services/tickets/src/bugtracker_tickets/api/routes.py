from __future__ import annotations

import uuid
from typing import Annotated, Literal

from bugtracker_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, next_link
from bugtracker_shared.web import CurrentPrincipal
from fastapi import APIRouter, Depends, Query, Request, Response

from bugtracker_tickets.api.schemas import (
    AssignRequest,
    CreateTicketRequest,
    TicketPage,
    TicketResponse,
)
from bugtracker_tickets.application.use_cases import AssigneeQuery, NewTicket, TicketUseCases
from bugtracker_tickets.domain.tickets import Status, Ticket


def use_cases(request: Request) -> TicketUseCases:
    cases: TicketUseCases = request.app.state.use_cases
    return cases


UseCases = Annotated[TicketUseCases, Depends(use_cases)]

router = APIRouter(prefix="/api/v1", tags=["tickets"])


def _with_etag(ticket: Ticket, response: Response) -> TicketResponse:
    response.headers["ETag"] = f'"{ticket.version}"'
    return TicketResponse.of(ticket)


def parse_assignee(value: Literal["me", "none"] | uuid.UUID | None) -> AssigneeQuery | None:
    if value is None:
        return None
    if value == "me":
        return AssigneeQuery(me=True)
    if value == "none":
        return AssigneeQuery(none=True)
    return AssigneeQuery(user_id=value)


@router.post("/projects/{project_ref}/tickets", status_code=201)
async def create_ticket(
    project_ref: str,
    body: CreateTicketRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
) -> TicketResponse:
    ticket = await cases.create_ticket(
        principal,
        project_ref,
        NewTicket(
            title=body.title,
            description=body.description,
            type=body.type,
            priority=body.priority,
            labels=tuple(body.labels),
            due_date=body.due_date,
            assignee_id=body.assignee_id,
        ),
    )
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    return _with_etag(ticket, response)


@router.get("/projects/{project_ref}/tickets")
async def list_tickets(
    project_ref: str,
    principal: CurrentPrincipal,
    cases: UseCases,
    request: Request,
    response: Response,
    status: Annotated[list[Status] | None, Query()] = None,
    assignee: Annotated[
        Literal["me", "none"] | uuid.UUID | None, Query(description="me, none or a user id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> TicketPage:
    page = await cases.list_tickets(
        principal,
        project_ref,
        statuses=tuple(status or ()),
        assignee=parse_assignee(assignee),
        limit=limit,
        cursor=cursor,
    )
    link = next_link(request.url.path, request.query_params.multi_items(), page.next_cursor)
    if link:
        response.headers["Link"] = link
    return TicketPage(
        items=[TicketResponse.of(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.get("/tickets/{ticket_ref}")
async def get_ticket(
    ticket_ref: str, principal: CurrentPrincipal, cases: UseCases, response: Response
) -> TicketResponse:
    return _with_etag(await cases.get_ticket(principal, ticket_ref), response)


@router.put("/tickets/{ticket_ref}/assignee")
async def assign_ticket(
    ticket_ref: str,
    body: AssignRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
) -> TicketResponse:
    return _with_etag(await cases.assign(principal, ticket_ref, body.assignee_id), response)
