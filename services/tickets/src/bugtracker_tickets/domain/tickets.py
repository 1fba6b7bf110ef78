"""Tickets: data, enumerations and the rules that need no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Final

from bugtracker_shared.permissions import AccessChecks, Permission, ProjectRole

from bugtracker_tickets.domain.configuration import Category
from bugtracker_tickets.domain.errors import (
    ForbiddenError,
    ProjectArchivedError,
    ProjectNotFoundError,
)

# How long a deleted ticket (or a deleted project's tickets) can be restored; after it,
# they are purged with everything that is theirs (docs/adr/0041).
RESTORE_WINDOW: Final = timedelta(days=30)

TICKET_KEY = re.compile(r"^(?P<project>[A-Z][A-Z0-9]{1,9})-(?P<number>[1-9][0-9]{0,8})$")
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Priorities sort by rank, not alphabetically."""
        return list(Priority).index(self)


@dataclass
class Ticket:
    id: uuid.UUID
    project_id: uuid.UUID
    key: str
    number: int
    title: str
    description: str
    # A ticket type and a status of the project's configuration (docs/adr/0040).
    type: str
    priority: Priority
    status: str
    reporter_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    assignee_id: uuid.UUID | None = None
    resolution: str | None = None
    labels: list[str] = field(default_factory=list)
    due_date: date | None = None
    deleted_at: datetime | None = None
    version: int = 1
    # The description as safe HTML, rendered when it was written; None for a ticket
    # stored before HTML was (docs/adr/0025).
    description_html: str | None = None
    # Planning (docs/adr/0039): the milestone it is planned for and its parent ticket,
    # each of the same project.
    milestone_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    # The category of `status` in the project's workflow, stored with it: what counts as
    # finished for milestones, blockers and parents (docs/adr/0040).
    status_category: Category = Category.TODO
    # Custom field values by field key, as validated against the project's fields.
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_done(self) -> bool:
        return self.status_category is Category.DONE

    def touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def event_fields(self, watchers: list[uuid.UUID]) -> dict[str, Any]:
        """The ticket as its events carry it (the fields of event_schemas.TicketData),
        with who watches it (for notifications)."""
        return {
            "id": self.id,
            "key": self.key,
            "project_id": self.project_id,
            "title": self.title,
            "type": self.type,
            "priority": self.priority.value,
            "status": self.status,
            "status_category": self.status_category.value,
            "resolution": self.resolution,
            "reporter_id": self.reporter_id,
            "assignee_id": self.assignee_id,
            "labels": list(self.labels),
            "due_date": self.due_date,
            "milestone_id": self.milestone_id,
            "parent_id": self.parent_id,
            "fields": dict(self.fields),
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted_at is not None,
            "watchers": list(watchers),
        }


# Fields a PATCH may change, in the order history lists them.
EDITABLE_FIELDS = (
    "title",
    "description",
    "type",
    "priority",
    "labels",
    "due_date",
    "milestone_id",
    "parent_id",
)


class Keep(Enum):
    """The value of a patch field that leaves the ticket's field as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True)
class TicketPatch:
    """What a PATCH changes: each field given, typed; `KEEP` leaves a field alone
    (`due_date=None` is a change: it clears the due date)."""

    title: str | Keep = KEEP
    description: str | Keep = KEEP
    type: str | Keep = KEEP
    priority: Priority | Keep = KEEP
    labels: tuple[str, ...] | Keep = KEEP
    due_date: date | Keep | None = KEEP
    milestone_id: uuid.UUID | Keep | None = KEEP
    parent_id: uuid.UUID | Keep | None = KEEP
    # Custom field values to set (None clears one); checked against the project's fields
    # by the use case, not here (docs/adr/0040).
    fields: dict[str, Any] | Keep = KEEP

    def apply_to(self, ticket: Ticket) -> dict[str, tuple[Any, Any]]:
        """Sets the ticket's fields this patch gives; returns (old, new) of each field
        whose value changed, in EDITABLE_FIELDS order."""
        before = {name: getattr(ticket, name) for name in EDITABLE_FIELDS}
        if not isinstance(self.title, Keep):
            ticket.title = self.title
        if not isinstance(self.description, Keep):
            ticket.description = self.description
        if not isinstance(self.type, Keep):
            ticket.type = self.type
        if not isinstance(self.priority, Keep):
            ticket.priority = self.priority
        if not isinstance(self.labels, Keep):
            ticket.labels = list(self.labels)
        if not isinstance(self.due_date, Keep):
            ticket.due_date = self.due_date
        if not isinstance(self.milestone_id, Keep):
            ticket.milestone_id = self.milestone_id
        if not isinstance(self.parent_id, Keep):
            ticket.parent_id = self.parent_id
        after = {name: getattr(ticket, name) for name in EDITABLE_FIELDS}
        return {name: (before[name], after[name]) for name in before if before[name] != after[name]}


@dataclass
class Comment:
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID
    body: str
    mentions: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    version: int = 1
    body_html: str | None = None  # as a ticket's description_html


@dataclass(frozen=True)
class HistoryEntry:
    ticket_id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID
    field: str
    from_value: Any
    to_value: Any
    id: int | None = None


def as_json(value: object) -> object:
    """A field value as history and events record it."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value


MENTION = re.compile(r"(?<![\w@])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)")


def mentioned(body: str, members: list[tuple[uuid.UUID, str, str | None]]) -> list[uuid.UUID]:
    """Members named in `body` as `@email` or `@display-name` (spaces written as `-` or
    `_`), case-insensitively, in order of first mention."""
    wanted = [token.lower().rstrip(".") for token in MENTION.findall(body)]
    found: list[uuid.UUID] = []
    for token in wanted:
        for user_id, display_name, email in members:
            names = {display_name.lower().replace(" ", "-"), display_name.lower().replace(" ", "_")}
            if (token in names or (email and token == email.lower())) and user_id not in found:
                found.append(user_id)
    return found


@dataclass(frozen=True)
class ProjectAccess(AccessChecks):
    """A caller's standing in a project, as the projects service reports it."""

    forbidden_error = ForbiddenError
    archived_error = ProjectArchivedError

    project_id: uuid.UUID
    project_key: str
    archived: bool
    role: ProjectRole | None
    permissions: frozenset[Permission]

    def is_read_only(self) -> bool:
        return self.archived

    def require_edit(self, reporter_id: uuid.UUID, caller_id: uuid.UUID) -> None:
        """Editing a ticket (its fields, relations, parent): a developer edits any ticket,
        a reporter those they reported; the project writable."""
        own = reporter_id == caller_id
        if not (
            Permission.TICKET_EDIT_ANY in self.permissions
            or (own and Permission.TICKET_EDIT_OWN in self.permissions)
        ):
            self.require(Permission.TICKET_EDIT_ANY)
        self.require_writable()


def visible(access: ProjectAccess | None) -> ProjectAccess:
    """Outsiders must not learn that a project or its tickets exist."""
    if access is None or Permission.PROJECT_READ not in access.permissions:
        raise ProjectNotFoundError("No such project.")
    return access


def project_ref(ref: str) -> str:
    """A project is named by its id or key; anything else cannot name a project."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        if PROJECT_KEY.match(ref.upper()):
            return ref.upper()
    raise ProjectNotFoundError("No such project.")


def ticket_key(project_key: str, number: int) -> str:
    return f"{project_key}-{number}"
