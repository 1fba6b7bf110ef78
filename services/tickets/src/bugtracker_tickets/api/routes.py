from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from bugtracker_shared.pagination import DEFAULT_LIMIT, Listing
from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    Cursor,
    IfNoneMatch,
    Limit,
    Paging,
    from_app_state,
    page_of,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from bugtracker_tickets.api.export import EXPORT_CONTENT, export_format, streamed
from bugtracker_tickets.api.schemas import (
    AssignRequest,
    CommentPage,
    CommentRequest,
    CommentResponse,
    ConfigKey,
    CreateTicketRequest,
    HistoryItem,
    HistoryPage,
    TicketPage,
    TicketResponse,
    TransitionRequest,
    TransitionResponse,
    UpdateTicketRequest,
    WatchersResponse,
    WatchingResponse,
    field_conditions,
)
from bugtracker_tickets.application.comments_and_watchers import CommentUseCases
from bugtracker_tickets.application.field_filters import FieldCondition
from bugtracker_tickets.application.ticket_export import ExportUseCases
from bugtracker_tickets.application.use_cases import (
    Idempotency,
    ListRequest,
    NewTicket,
    TicketUseCases,
)
from bugtracker_tickets.domain.tickets import Priority

UseCases = Annotated[TicketUseCases, Depends(from_app_state(TicketUseCases))]
Comments = Annotated[CommentUseCases, Depends(from_app_state(CommentUseCases, "comment_cases"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description="Repeat a create safely: the same key and body within 24 h return the "
        "first result",
    ),
]
SortParam = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "priority",
    "-priority",
    "due_date",
    "-due_date",
    "relevance",
]

router = APIRouter(prefix="/api/v1", tags=["tickets"])


@dataclass
class Filters:
    """The list filters shared by a project's list and the cross-project list."""

    status: Annotated[list[ConfigKey] | None, Query(max_length=30)] = None
    priority: Annotated[list[Priority] | None, Query()] = None
    type: Annotated[list[ConfigKey] | None, Query(max_length=30)] = None
    assignee: Annotated[
        Literal["me", "none"] | uuid.UUID | None, Query(description="me, none or a user id")
    ] = None
    reporter: uuid.UUID | None = None
    label: Annotated[list[str] | None, Query(max_length=20)] = None
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None
    due_before: date | None = None
    updated_since: datetime | None = None
    milestone: Annotated[
        Literal["none"] | uuid.UUID | None, Query(description="a milestone id, or none")
    ] = None
    parent: Annotated[
        Literal["none"] | uuid.UUID | None, Query(description="a parent ticket id, or none")
    ] = None
    is_: Annotated[
        Literal["blocked"] | None,
        Query(alias="is", description="blocked: with an unfinished blocker"),
    ] = None
    query: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1000,
            description="a typed query such as `status:open assignee:@me -label:wontfix "
            'crash` (docs/api.md "Find tickets"); combines with the other filters',
        ),
    ] = None
    sort: Annotated[
        SortParam | None,
        Query(
            description="default -updated_at; `relevance` (with q: best full-text "
            "matches first, slower on words that match many tickets)"
        ),
    ] = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor = None
    include_total: bool = False

    def request(self, fields: tuple[FieldCondition, ...] = ()) -> ListRequest:
        return ListRequest(
            fields=fields,
            statuses=tuple(self.status or ()),
            priorities=tuple(self.priority or ()),
            types=tuple(self.type or ()),
            assignee=self.assignee,
            reporter=self.reporter,
            labels=tuple(self.label or ()),
            q=self.q,
            due_before=self.due_before,
            updated_since=self.updated_since,
            milestone=self.milestone,
            parent=self.parent,
            blocked=self.is_ == "blocked",
            query=self.query,
            sort=self.sort,
            limit=self.limit,
            cursor=self.cursor,
            include_total=self.include_total,
        )


async def list_filters(**params: Any) -> Filters:
    return Filters(**params)


# The query parameters are declared once, by the dataclass; the dependency is an async
# function with the same signature, because FastAPI calls a class (a sync callable) in
# its thread pool: a thread hop on every list request, measured in bench/.
list_filters.__signature__ = inspect.signature(Filters)  # type: ignore[attr-defined]
ListFilters = Annotated[Filters, Depends(list_filters)]


@router.post("/projects/{project_ref}/tickets", status_code=201)
async def create_ticket(
    project_ref: str,
    body: CreateTicketRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TicketResponse:
    created = await cases.create_ticket(
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
            milestone_id=body.milestone_id,
            parent_id=body.parent_id,
            fields=body.fields,
        ),
        Idempotency.of(idempotency_key, body.model_dump(mode="json")),
    )
    response.headers["Location"] = f"/api/v1/tickets/{created.ticket.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return versioned(response, TicketResponse.of(created.ticket))


async def list_or_export(
    cases: TicketUseCases,
    principal: CurrentPrincipal,
    project_ref: str | None,
    listed: ListRequest,
    request: Request,
    response: Response,
) -> TicketPage | StreamingResponse:
    """A page as JSON, or every ticket of the list as CSV or NDJSON when `Accept` asks."""
    form = export_format(request.headers.get("accept"))
    if form is not None:
        export = await ExportUseCases(cases).export(principal, project_ref, listed)
        return streamed(export, form, "tickets")
    page = await cases.list_tickets(principal, project_ref, listed)
    return page_of(request, response, TicketPage, page, TicketResponse.of, total=page.total)


def _listed(filters: Filters, request: Request) -> ListRequest:
    return filters.request(field_conditions(request.query_params.multi_items()))


@router.get("/projects/{project_ref}/tickets", response_model=TicketPage, responses=EXPORT_CONTENT)
async def list_project_tickets(
    project_ref: str,
    principal: CurrentPrincipal,
    cases: UseCases,
    filters: ListFilters,
    request: Request,
    response: Response,
) -> TicketPage | StreamingResponse:
    listed = _listed(filters, request)
    return await list_or_export(cases, principal, project_ref, listed, request, response)


@router.get("/tickets", response_model=TicketPage, responses=EXPORT_CONTENT)
async def list_my_tickets(
    principal: CurrentPrincipal,
    cases: UseCases,
    filters: ListFilters,
    request: Request,
    response: Response,
) -> TicketPage | StreamingResponse:
    """Tickets of every project the caller belongs to, e.g. `?assignee=me&status=open`.
    With `Accept: text/csv` or `application/x-ndjson`: every one of them, streamed."""
    listed = _listed(filters, request)
    return await list_or_export(cases, principal, None, listed, request, response)


@router.get("/tickets/{ticket_ref}", response_model=TicketResponse)
async def get_ticket(
    ticket_ref: str,
    principal: CurrentPrincipal,
    cases: UseCases,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> TicketResponse | Response:
    ticket = await cases.get_ticket(principal, ticket_ref)
    return unless_not_modified(response, if_none_match, TicketResponse.of(ticket))


@router.patch("/tickets/{ticket_ref}")
async def update_ticket(
    ticket_ref: str,
    body: UpdateTicketRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    write: Conditional,
) -> TicketResponse:
    ticket = await cases.update_ticket(
        principal,
        ticket_ref,
        body.patch(),
        expected_version=write.expected_version,
    )
    return write.answer(TicketResponse.of(ticket))


@router.put("/tickets/{ticket_ref}/assignee")
async def assign_ticket(
    ticket_ref: str,
    body: AssignRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    write: Conditional,
) -> TicketResponse:
    ticket = await cases.assign(
        principal, ticket_ref, body.assignee_id, expected_version=write.expected_version
    )
    return write.answer(TicketResponse.of(ticket))


@router.get("/tickets/{ticket_ref}/transitions")
async def list_transitions(
    ticket_ref: str, principal: CurrentPrincipal, cases: UseCases
) -> list[TransitionResponse]:
    """The transitions the caller may make now."""
    return [
        TransitionResponse(to=t.to, requires_resolution=t.requires_resolution)
        for t in await cases.transitions(principal, ticket_ref)
    ]


@router.post("/tickets/{ticket_ref}/transitions")
async def transition_ticket(
    ticket_ref: str,
    body: TransitionRequest,
    principal: CurrentPrincipal,
    cases: UseCases,
    write: Conditional,
) -> TicketResponse:
    ticket = await cases.transition(
        principal,
        ticket_ref,
        body.to,
        body.resolution,
        comment=body.comment,
        expected_version=write.expected_version,
    )
    return write.answer(TicketResponse.of(ticket))


@router.delete("/tickets/{ticket_ref}", status_code=204)
async def delete_ticket(ticket_ref: str, principal: CurrentPrincipal, cases: UseCases) -> None:
    await cases.delete_ticket(principal, ticket_ref)


@router.post("/tickets/{ticket_ref}/restore")
async def restore_ticket(
    ticket_ref: str, principal: CurrentPrincipal, cases: UseCases, response: Response
) -> TicketResponse:
    return versioned(response, TicketResponse.of(await cases.restore_ticket(principal, ticket_ref)))


@router.get("/tickets/{ticket_ref}/children")
async def list_children(
    ticket_ref: str,
    principal: CurrentPrincipal,
    cases: UseCases,
    paging: Paging,
) -> TicketPage:
    """The ticket's sub-tickets, oldest first."""
    page = await cases.children(principal, ticket_ref, limit=paging.limit, cursor=paging.cursor)
    return paging.answer(TicketPage, Listing(page.items, page.next_cursor), TicketResponse.of)


@router.get("/tickets/{ticket_ref}/history")
async def ticket_history(
    ticket_ref: str, principal: CurrentPrincipal, cases: UseCases, paging: Paging
) -> HistoryPage:
    entries, next_cursor = await cases.history(
        principal, ticket_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(HistoryPage, Listing(entries, next_cursor), HistoryItem.of)


@router.get("/tickets/{ticket_ref}/comments")
async def list_comments(
    ticket_ref: str, principal: CurrentPrincipal, comments: Comments, paging: Paging
) -> CommentPage:
    page = await comments.list_comments(
        principal, ticket_ref, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(CommentPage, page, CommentResponse.of)


@router.post("/tickets/{ticket_ref}/comments", status_code=201)
async def add_comment(
    ticket_ref: str,
    body: CommentRequest,
    principal: CurrentPrincipal,
    comments: Comments,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CommentResponse:
    created = await comments.add_comment(
        principal,
        ticket_ref,
        body.body,
        Idempotency.of(idempotency_key, body.model_dump(mode="json")),
    )
    comment = created.comment
    response.headers["Location"] = f"/api/v1/tickets/{comment.ticket_id}/comments/{comment.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return versioned(response, CommentResponse.of(comment))


@router.patch("/tickets/{ticket_ref}/comments/{comment_id}")
async def edit_comment(
    ticket_ref: str,
    comment_id: uuid.UUID,
    body: CommentRequest,
    principal: CurrentPrincipal,
    comments: Comments,
    write: Conditional,
) -> CommentResponse:
    comment = await comments.edit_comment(
        principal, ticket_ref, comment_id, body.body, expected_version=write.expected_version
    )
    return write.answer(CommentResponse.of(comment))


@router.delete("/tickets/{ticket_ref}/comments/{comment_id}", status_code=204)
async def delete_comment(
    ticket_ref: str, comment_id: uuid.UUID, principal: CurrentPrincipal, comments: Comments
) -> None:
    await comments.delete_comment(principal, ticket_ref, comment_id)


@router.get("/tickets/{ticket_ref}/watchers")
async def list_watchers(
    ticket_ref: str, principal: CurrentPrincipal, comments: Comments
) -> WatchersResponse:
    return WatchersResponse(items=await comments.watchers(principal, ticket_ref))


@router.put("/tickets/{ticket_ref}/watchers/me")
async def watch(
    ticket_ref: str, principal: CurrentPrincipal, comments: Comments
) -> WatchingResponse:
    ticket = await comments.watch(principal, ticket_ref, watching=True)
    return WatchingResponse(ticket_id=ticket.id, user_id=principal.user_id, watching=True)


@router.delete("/tickets/{ticket_ref}/watchers/me", status_code=204)
async def unwatch(ticket_ref: str, principal: CurrentPrincipal, comments: Comments) -> None:
    await comments.watch(principal, ticket_ref, watching=False)


# The error answers of each operation that its route does not reveal (the OpenAPI
# document derives the rest: bugtracker_shared.openapi_answers, docs/adr/0031).
_WRITE = {403, 409}  # the role does not allow it; archived project, invalid transition
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/projects/{project_ref}/tickets"): _WRITE,
    ("PATCH", "/api/v1/tickets/{ticket_ref}"): _WRITE,
    ("DELETE", "/api/v1/tickets/{ticket_ref}"): _WRITE,
    ("PUT", "/api/v1/tickets/{ticket_ref}/assignee"): _WRITE,
    ("POST", "/api/v1/tickets/{ticket_ref}/transitions"): _WRITE,
    ("POST", "/api/v1/tickets/{ticket_ref}/restore"): _WRITE,
    ("POST", "/api/v1/tickets/{ticket_ref}/comments"): _WRITE,
    ("PATCH", "/api/v1/tickets/{ticket_ref}/comments/{comment_id}"): _WRITE,
    ("DELETE", "/api/v1/tickets/{ticket_ref}/comments/{comment_id}"): _WRITE,
    ("PUT", "/api/v1/tickets/{ticket_ref}/watchers/me"): _WRITE,
    ("DELETE", "/api/v1/tickets/{ticket_ref}/watchers/me"): _WRITE,
}
VERSIONED = ("TicketResponse", "CommentResponse")  # answered with an ETag
