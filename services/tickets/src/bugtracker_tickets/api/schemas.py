from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, Field, StringConstraints, model_validator

from bugtracker_tickets.application.field_filters import FieldCondition
from bugtracker_tickets.application.markdown import render
from bugtracker_tickets.domain.errors import InvalidFilterError
from bugtracker_tickets.domain.tickets import (
    KEEP,
    Comment,
    HistoryEntry,
    Priority,
    Ticket,
    TicketPatch,
)
from bugtracker_tickets.domain.workflow import Resolution

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
# A status, ticket type or field key of the project's configuration (docs/adr/0040).
ConfigKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
FieldValues = Annotated[
    dict[ConfigKey, Any],
    Field(
        max_length=50,
        description="Custom field values by field key (see the project's fields); null clears one.",
    ),
]


class CreateTicketRequest(StrictModel):
    model_config = example(
        title="Login fails with a long password",
        description="A 200-character password answers 500.",
        type="bug",
        priority="high",
        labels=["auth"],
        due_date="2026-12-01",
    )

    title: Title
    description: Annotated[str, Field(max_length=50_000)] = ""
    type: Annotated[
        ConfigKey | None,
        Field(description="One of the project's ticket types; its first when left out."),
    ] = None
    priority: Priority = Priority.MEDIUM
    labels: Annotated[list[Label], Field(default_factory=list, max_length=20)]
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None
    milestone_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    fields: FieldValues | None = None


# The fields a PATCH may clear with null.
_NULLABLE = frozenset({"due_date", "milestone_id", "parent_id"})


class UpdateTicketRequest(StrictModel):
    """Only the fields present change; null clears `due_date`, `milestone_id` or
    `parent_id`."""

    title: Title | None = None
    description: Annotated[str | None, Field(max_length=50_000)] = None
    type: ConfigKey | None = None
    priority: Priority | None = None
    labels: Annotated[list[Label] | None, Field(max_length=20)] = None
    due_date: date | None = None
    milestone_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    fields: FieldValues | None = None

    @model_validator(mode="after")
    def no_nulls_but_clearable(self) -> UpdateTicketRequest:
        for name in self.model_fields_set - _NULLABLE:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def patch(self) -> TicketPatch:
        """The typed patch (null is refused for every field but `due_date`, so None here
        means "not given")."""
        return TicketPatch(
            title=KEEP if self.title is None else self.title,
            description=KEEP if self.description is None else self.description,
            type=KEEP if self.type is None else self.type,
            priority=KEEP if self.priority is None else self.priority,
            labels=KEEP if self.labels is None else tuple(self.labels),
            due_date=self._given("due_date", self.due_date),
            milestone_id=self._given("milestone_id", self.milestone_id),
            parent_id=self._given("parent_id", self.parent_id),
            fields=KEEP if self.fields is None else dict(self.fields),
        )

    def _given(self, name: str, value: Any) -> Any:
        return value if name in self.model_fields_set else KEEP


class AssignRequest(StrictModel):
    assignee_id: uuid.UUID | None


class TransitionRequest(StrictModel):
    to: ConfigKey
    resolution: Resolution | None = None
    comment: Annotated[str | None, Field(min_length=1, max_length=20_000)] = None


class TransitionResponse(BaseModel):
    to: str
    requires_resolution: bool


class CommentRequest(StrictModel):
    body: Annotated[str, Field(min_length=1, max_length=20_000)]


class CommentResponse(ResponseModel):
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
        html = comment.body_html
        return cls.from_attributes(
            comment, body_html=html if html is not None else render(comment.body)
        )


class CommentPage(Page[CommentResponse]):
    pass


class HistoryItem(ResponseModel):
    at: datetime
    actor_id: uuid.UUID
    field: str
    from_: Any = Field(serialization_alias="from")
    to: Any

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItem:
        return cls.from_attributes(entry, from_=entry.from_value, to=entry.to_value)


class HistoryPage(Page[HistoryItem]):
    pass


class WatchersResponse(BaseModel):
    items: list[uuid.UUID]


class WatchingResponse(BaseModel):
    ticket_id: uuid.UUID
    user_id: uuid.UUID
    watching: bool


class TicketResponse(ResponseModel):
    id: uuid.UUID
    key: str
    project_id: uuid.UUID
    title: str
    description: str
    description_html: str
    type: str
    priority: Priority
    status: str
    status_category: Annotated[
        str, Field(description="todo, in_progress or done: the status's category")
    ]
    resolution: str | None
    reporter_id: uuid.UUID
    assignee_id: uuid.UUID | None
    labels: list[str]
    due_date: date | None
    milestone_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    fields: Annotated[dict[str, Any], Field(description="Custom field values by key.")]
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, ticket: Ticket) -> TicketResponse:
        html = ticket.description_html
        return cls.from_attributes(
            ticket, description_html=html if html is not None else render(ticket.description)
        )


class TicketPage(Page[TicketResponse]):
    total: Annotated[
        int | None,
        Field(description="with include_total=true", exclude_if=lambda total: total is None),
    ] = None


MAX_FIELD_FILTERS = 10
MAX_FILTER_VALUE = 200
_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


def field_conditions(params: list[tuple[str, str]]) -> tuple[FieldCondition, ...]:
    """The `field.<key>=<value>` (repeatable: any of), `field.<key>.gte=` and
    `field.<key>.lte=` list parameters, by key. Query parameters a dataclass cannot
    declare (their names hold the key), so they are read here (docs/adr/0040)."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in params:
        if not name.startswith("field."):
            continue
        key, _, bound = name.removeprefix("field.").partition(".")
        if not _CONFIG_KEY.match(key) or bound not in ("", "gte", "lte"):
            raise InvalidFilterError(name, "is not field.<key>, .gte or .lte")
        if not value or len(value) > MAX_FILTER_VALUE:
            raise InvalidFilterError(name, f"needs a value of 1 to {MAX_FILTER_VALUE} characters")
        condition = found.setdefault(key, {"equals": []})
        if bound:
            condition[bound] = value
        else:
            condition["equals"].append(value)
    if len(found) > MAX_FIELD_FILTERS:
        raise InvalidFilterError("field", f"filters on at most {MAX_FIELD_FILTERS} fields")
    return tuple(
        FieldCondition(
            key=key,
            equals=tuple(c["equals"]),
            gte=c.get("gte"),
            lte=c.get("lte"),
        )
        for key, c in found.items()
    )
