"""A project's tracker configuration (docs/adr/0040): its workflow, ticket types and
custom fields. Members read them; maintainers change them. Replacing the workflow or the
types needs `If-Match` (428 without it): a whole document put back from a stale copy
would silently undo someone else's change."""

from __future__ import annotations

from typing import Annotated

from bugtracker_shared.etags import expected_version
from bugtracker_shared.web import (
    Conditional,
    CurrentPrincipal,
    IfMatch,
    IfNoneMatch,
    from_app_state,
    unless_not_modified,
    versioned,
)
from fastapi import APIRouter, Depends, Response

from bugtracker_tickets.api.configuration_schemas import (
    CreateFieldRequest,
    FieldList,
    FieldResponse,
    PutTicketTypesRequest,
    PutWorkflowRequest,
    TicketTypesResponse,
    UpdateFieldRequest,
    WorkflowResponse,
)
from bugtracker_tickets.api.schemas import ConfigKey
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.domain.errors import PreconditionRequiredError

Configuration = Annotated[
    ConfigurationUseCases, Depends(from_app_state(ConfigurationUseCases, "configuration_cases"))
]

router = APIRouter(prefix="/api/v1/projects/{project_ref}", tags=["configuration"])


def _required(if_match: str | None) -> int | None:
    if if_match is None:
        raise PreconditionRequiredError()
    return expected_version(if_match)


@router.get("/workflow", response_model=WorkflowResponse)
async def get_workflow(
    project_ref: str,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> WorkflowResponse | Response:
    config = await cases.configuration(principal, project_ref)
    return unless_not_modified(response, if_none_match, WorkflowResponse.of(config.workflow))


@router.put("/workflow")
async def replace_workflow(
    project_ref: str,
    body: PutWorkflowRequest,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
    if_match: IfMatch = None,
) -> WorkflowResponse:
    """Tickets in a removed status need `migrate` (409 status_in_use with the counts)."""
    workflow = await cases.replace_workflow(
        principal,
        project_ref,
        body.workflow(),
        body.migrate,
        expected_version=_required(if_match),
    )
    return versioned(response, WorkflowResponse.of(workflow))


@router.get("/ticket-types", response_model=TicketTypesResponse)
async def get_ticket_types(
    project_ref: str,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> TicketTypesResponse | Response:
    config = await cases.configuration(principal, project_ref)
    return unless_not_modified(response, if_none_match, TicketTypesResponse.of(config.types))


@router.put("/ticket-types")
async def replace_ticket_types(
    project_ref: str,
    body: PutTicketTypesRequest,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
    if_match: IfMatch = None,
) -> TicketTypesResponse:
    """Tickets of a removed type need `migrate` (409 type_in_use with the counts)."""
    types = await cases.replace_types(
        principal,
        project_ref,
        body.ticket_types(),
        body.migrate,
        expected_version=_required(if_match),
    )
    return versioned(response, TicketTypesResponse.of(types))


@router.get("/fields")
async def list_fields(
    project_ref: str, principal: CurrentPrincipal, cases: Configuration
) -> FieldList:
    """Every live field of the project, in order (at most 50: not paginated)."""
    config = await cases.configuration(principal, project_ref)
    return FieldList(items=[FieldResponse.of(d) for d in config.fields])


@router.post("/fields", status_code=201)
async def create_field(
    project_ref: str,
    body: CreateFieldRequest,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
) -> FieldResponse:
    definition = await cases.create_field(principal, project_ref, body.new_field())
    response.headers["Location"] = f"/api/v1/projects/{project_ref}/fields/{definition.key}"
    return versioned(response, FieldResponse.of(definition))


@router.get("/fields/{key}", response_model=FieldResponse)
async def get_field(
    project_ref: str,
    key: ConfigKey,
    principal: CurrentPrincipal,
    cases: Configuration,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> FieldResponse | Response:
    definition = await cases.get_field(principal, project_ref, key)
    return unless_not_modified(response, if_none_match, FieldResponse.of(definition))


@router.patch("/fields/{key}")
async def update_field(
    project_ref: str,
    key: ConfigKey,
    body: UpdateFieldRequest,
    principal: CurrentPrincipal,
    cases: Configuration,
    write: Conditional,
) -> FieldResponse:
    """Removing options tickets use needs `migrate` (409 option_in_use with the counts)."""
    definition = await cases.update_field(
        principal,
        project_ref,
        key,
        body.patch(),
        body.migrate,
        expected_version=write.expected_version,
    )
    return write.answer(FieldResponse.of(definition))


@router.delete("/fields/{key}", status_code=204)
async def delete_field(
    project_ref: str,
    key: ConfigKey,
    principal: CurrentPrincipal,
    cases: Configuration,
    write: Conditional,
) -> None:
    """Hides the field and its values at once; the values are purged in the background."""
    await cases.delete_field(principal, project_ref, key, expected_version=write.expected_version)


# The error answers each operation's route does not reveal (docs/adr/0031).
_WRITE = {403, 409, 412}
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("PUT", "/api/v1/projects/{project_ref}/workflow"): _WRITE | {428},
    ("PUT", "/api/v1/projects/{project_ref}/ticket-types"): _WRITE | {428},
    ("POST", "/api/v1/projects/{project_ref}/fields"): {403, 409},
    ("PATCH", "/api/v1/projects/{project_ref}/fields/{key}"): _WRITE,
    ("DELETE", "/api/v1/projects/{project_ref}/fields/{key}"): _WRITE,
}
VERSIONED = ("WorkflowResponse", "TicketTypesResponse", "FieldResponse")
