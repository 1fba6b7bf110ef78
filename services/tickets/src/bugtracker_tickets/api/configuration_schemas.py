"""Request and response bodies of a project's tracker configuration (docs/adr/0040)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, Field, StringConstraints, model_validator

from bugtracker_tickets.api.schemas import ConfigKey
from bugtracker_tickets.application.configuration import FieldPatch, NewField
from bugtracker_tickets.domain.configuration import (
    MAX_DESCRIPTION,
    MAX_FIELDS,
    MAX_OPTIONS,
    MAX_STATUSES,
    MAX_TRANSITIONS,
    MAX_TYPES,
    Category,
    FieldDef,
    FieldOption,
    FieldType,
    StatusDef,
    TicketTypeDef,
    TicketTypes,
    TransitionDef,
    Workflow,
    workflow_document,
)
from bugtracker_tickets.domain.tickets import KEEP

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
MinRole = Literal["reporter", "developer", "maintainer"]


class StatusBody(StrictModel):
    key: ConfigKey
    name: Name
    category: Category
    requires_resolution: Annotated[
        bool, Field(description="Moving into it needs a resolution (the default `closed`).")
    ] = False


class TransitionBody(StrictModel):
    from_: Annotated[ConfigKey, Field(alias="from")]
    to: ConfigKey
    min_role: Annotated[
        MinRole,
        Field(description="The lowest role that may make it; a reporter only on own tickets."),
    ] = "developer"


class WorkflowBody(StrictModel):
    statuses: Annotated[list[StatusBody], Field(min_length=1, max_length=MAX_STATUSES)]
    initial: ConfigKey
    transitions: Annotated[list[TransitionBody], Field(max_length=MAX_TRANSITIONS)]

    def workflow(self) -> Workflow:
        return Workflow(
            statuses=tuple(
                StatusDef(s.key, s.name, s.category, s.requires_resolution) for s in self.statuses
            ),
            initial=self.initial,
            transitions=tuple(
                TransitionDef(t.from_, t.to, ProjectRole(t.min_role)) for t in self.transitions
            ),
        )


class PutWorkflowRequest(WorkflowBody):
    model_config = example(
        statuses=[
            {"key": "new", "name": "New", "category": "todo"},
            {"key": "triaged", "name": "Triaged", "category": "in_progress"},
            {"key": "solved", "name": "Solved", "category": "done"},
        ],
        initial="new",
        transitions=[
            {"from": "new", "to": "triaged", "min_role": "developer"},
            {"from": "triaged", "to": "solved", "min_role": "developer"},
            {"from": "solved", "to": "new", "min_role": "reporter"},
        ],
        migrate={"open": "new", "in_progress": "triaged", "done": "solved"},
    )

    migrate: Annotated[
        dict[ConfigKey, ConfigKey],
        Field(
            max_length=MAX_STATUSES,
            description="Removed status -> kept status, for the tickets in a removed status.",
        ),
    ] = Field(default_factory=dict)


class WorkflowResponse(BaseModel):
    statuses: list[StatusBody]
    initial: str
    transitions: list[TransitionBody]
    version: int

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowResponse:
        """The document that is stored and published, with its version."""
        return cls.model_validate(workflow_document(workflow) | {"version": workflow.version})


class TicketTypeBody(StrictModel):
    key: ConfigKey
    name: Name


class PutTicketTypesRequest(StrictModel):
    types: Annotated[
        list[TicketTypeBody],
        Field(
            min_length=1,
            max_length=MAX_TYPES,
            description="The first is the type of a ticket created without one.",
        ),
    ]
    migrate: Annotated[
        dict[ConfigKey, ConfigKey],
        Field(max_length=MAX_TYPES, description="Removed type -> kept type."),
    ] = Field(default_factory=dict)

    def ticket_types(self) -> TicketTypes:
        return TicketTypes(types=tuple(TicketTypeDef(t.key, t.name) for t in self.types))


class TicketTypesResponse(BaseModel):
    types: list[TicketTypeBody]
    version: int

    @classmethod
    def of(cls, types: TicketTypes) -> TicketTypesResponse:
        return cls(
            types=[TicketTypeBody(key=t.key, name=t.name) for t in types.types],
            version=types.version,
        )


OptionValue = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class OptionBody(StrictModel):
    value: OptionValue
    label: Name


Options = Annotated[list[OptionBody], Field(max_length=MAX_OPTIONS)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]


def _options(options: list[OptionBody]) -> tuple[FieldOption, ...]:
    return tuple(FieldOption(o.value, o.label) for o in options)


class CreateFieldRequest(StrictModel):
    model_config = example(
        key="severity",
        name="Severity",
        type="select",
        options=[{"value": "minor", "label": "Minor"}, {"value": "major", "label": "Major"}],
        required=True,
        ticket_types=["bug"],
    )

    key: ConfigKey
    name: Name
    type: FieldType
    options: Options = Field(default_factory=list)
    required: bool = False
    ticket_types: Annotated[
        list[ConfigKey] | None,
        Field(max_length=MAX_TYPES, description="Only tickets of these types; all when absent."),
    ] = None
    description: Description = ""

    def new_field(self) -> NewField:
        return NewField(
            key=self.key,
            name=self.name,
            type=self.type,
            options=_options(self.options),
            required=self.required,
            ticket_types=None if self.ticket_types is None else tuple(self.ticket_types),
            description=self.description,
        )


class UpdateFieldRequest(StrictModel):
    """Only the fields present change (`type` and `key` cannot); `ticket_types: null`
    makes the field apply to every type."""

    name: Name | None = None
    description: Description | None = None
    required: bool | None = None
    options: Options | None = None
    ticket_types: Annotated[list[ConfigKey] | None, Field(max_length=MAX_TYPES)] = None
    migrate: Annotated[
        dict[OptionValue, OptionValue | None],
        Field(
            max_length=MAX_OPTIONS,
            description="Removed option -> kept option (null drops the value).",
        ),
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def no_nulls_but_ticket_types(self) -> UpdateFieldRequest:
        for name in self.model_fields_set - {"ticket_types", "migrate"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def patch(self) -> FieldPatch:
        given = self.model_fields_set
        return FieldPatch(
            name=KEEP if self.name is None else self.name,
            description=KEEP if self.description is None else self.description,
            required=KEEP if self.required is None else self.required,
            options=KEEP if self.options is None else _options(self.options),
            ticket_types=(
                KEEP
                if "ticket_types" not in given
                else None
                if self.ticket_types is None
                else tuple(self.ticket_types)
            ),
        )


class FieldResponse(ResponseModel):
    id: uuid.UUID
    key: str
    name: str
    type: FieldType
    options: list[OptionBody]
    required: bool
    ticket_types: list[str] | None
    description: str
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, definition: FieldDef) -> FieldResponse:
        return cls.from_attributes(
            definition,
            options=[OptionBody(value=o.value, label=o.label) for o in definition.options],
            ticket_types=(
                list(definition.ticket_types) if definition.ticket_types is not None else None
            ),
        )


class FieldList(BaseModel):
    items: Annotated[
        list[FieldResponse], Field(max_length=MAX_FIELDS, description="In their order.")
    ]
