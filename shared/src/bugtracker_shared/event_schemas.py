"""The `data` of every Bugtracker event, as pydantic models: the contract producers keep
and consumers may rely on. docs/asyncapi.yaml is generated from these models
(`python -m bugtracker_shared.asyncapi`), and the tests check both that the file matches
them and that the payloads the services really publish validate against them.

Models allow extra fields: a producer may add a field without breaking a consumer; removing
or retyping one is a new event version (`.v2`). Consumers check every delivery against
these models and against `EVENT_SOURCES` before handling it
(`bugtracker_shared.messaging.accepted_event`): an event that fails is dead-lettered.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FieldChange(_Data):
    """One field's value before and after the change."""

    from_: Any = Field(alias="from")
    to: Any


Changes = dict[str, FieldChange]


def _isoformat(value: datetime) -> str:
    return value.isoformat()


# An instant as producers have always written it (`datetime.isoformat()`: `+00:00`, not
# pydantic's `Z`), so building the models changed nothing on the wire.
Instant = Annotated[datetime, PlainSerializer(_isoformat, when_used="json")]


# -- users and sessions (service auth) -------------------------------------------------


class UserData(_Data):
    """The user after the change; never the password hash."""

    id: uuid.UUID
    email: str
    display_name: str
    role: str = Field(description="`admin` or `member`")
    is_active: bool


class RevocationData(_Data):
    """Sessions whose access tokens must be refused from `revoked_at` on."""

    user_id: uuid.UUID
    session_ids: list[uuid.UUID]
    revoked_at: Instant
    forget_after: Instant = Field(
        description="After this instant no access token of these sessions can verify."
    )
    revoked_by: uuid.UUID | None


class UserRegistered(UserData):
    pass


class UserDeactivated(UserData, RevocationData):
    pass


class RevocationReason(StrEnum):
    LOGOUT = "logout"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 (a reason, not a secret)
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a reason, not a secret)
    USER_DEACTIVATED = "user_deactivated"
    # A personal access token revoked by its owner: `session_ids` is [the token's id].
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 (a reason, not a secret)


class AuthSessionRevoked(RevocationData):
    reason: RevocationReason


# -- projects and memberships (service projects) -----------------------------------------


class ProjectData(_Data):
    """The project after the change."""

    id: uuid.UUID
    key: str
    name: str
    description: str
    archived: bool
    deleted: bool
    version: int


class ProjectCreated(ProjectData):
    owner_id: uuid.UUID


class ProjectUpdated(ProjectData):
    changes: Changes


class ProjectArchived(ProjectData):
    changes: Changes


class ProjectDeleted(ProjectData):
    pass


class MembershipData(_Data):
    """A membership after the change; memberships belong to the project aggregate."""

    project_id: uuid.UUID
    project_key: str
    user_id: uuid.UUID
    role: str = Field(description="viewer, reporter, developer, maintainer or owner")


class ProjectMemberAdded(MembershipData):
    pass


class ProjectMemberRoleChanged(MembershipData):
    changes: Changes


class ProjectMemberRemoved(MembershipData):
    pass


# -- tickets (service tickets) -----------------------------------------------------------


class TicketData(_Data):
    """The ticket after the change."""

    id: uuid.UUID
    key: str
    project_id: uuid.UUID
    title: str
    type: str = Field(
        description="One of the project's ticket types (default: bug, feature, task or improvement)"
    )
    priority: str = Field(description="low, medium, high or critical")
    status: str = Field(
        description="A status of the project's workflow (default: open, "
        "in_progress, in_review, done or closed)"
    )
    status_category: str | None = Field(
        default=None, description="todo, in_progress or done: the status's category"
    )
    resolution: str | None
    reporter_id: uuid.UUID
    assignee_id: uuid.UUID | None
    labels: list[str]
    due_date: date | None
    milestone_id: uuid.UUID | None = Field(
        default=None, description="The milestone it is planned for."
    )
    parent_id: uuid.UUID | None = Field(default=None, description="Its parent ticket.")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Custom field values by field key."
    )
    version: int
    created_at: Instant
    updated_at: Instant
    deleted: bool = Field(description="The ticket is deleted (it can be restored).")
    watchers: list[uuid.UUID] = Field(
        default_factory=list, description="Users watching the ticket; absent means none."
    )


class TicketCreated(TicketData):
    pass


class TicketUpdated(TicketData):
    changes: Changes


class Bulk(_Data):
    """The bulk change an event is part of: one request, `size` tickets changed alike."""

    id: uuid.UUID
    size: int


class TicketAssigned(TicketData):
    changes: Changes = Field(description="`assignee_id` from the previous to the new one")
    bulk: Bulk | None = Field(
        default=None, description="Set when the assignment is part of a bulk change."
    )


class TicketStatusChanged(TicketData):
    changes: Changes = Field(
        description="`status` (or `status_category`, when a workflow change put the "
        "ticket's status in another category), and `resolution` when it changed"
    )


class Comment(_Data):
    id: uuid.UUID
    author_id: uuid.UUID
    body: str
    mentions: list[uuid.UUID] = Field(description="Members the comment mentions.")


class TicketCommented(TicketData):
    comment: Comment


class TicketDeleted(TicketData):
    changes: Changes = Field(description="`deleted` from false to true")


class RelatedTicket(_Data):
    id: uuid.UUID
    key: str
    project_id: uuid.UUID


class Relation(_Data):
    """A relation seen from the event's ticket: its type from this side and the other."""

    id: uuid.UUID
    type: str = Field(description="blocks, blocked_by, duplicates, duplicated_by or relates_to")
    ticket: RelatedTicket


class TicketRelated(TicketData):
    relation: Relation


class TicketUnrelated(TicketData):
    relation: Relation


class TicketUnblocked(TicketData):
    """The ticket's last unfinished blocker was finished."""

    blocker: RelatedTicket = Field(description="The blocker whose finishing unblocked it.")


class AttachmentData(_Data):
    """A file on the ticket (docs/adr/0041)."""

    id: uuid.UUID
    filename: str
    content_type: str = Field(description="Sniffed from the bytes, never the client's")
    size: int
    sha256: str
    uploader_id: uuid.UUID


class TicketAttachmentAdded(TicketData):
    attachment: AttachmentData


class TicketAttachmentRemoved(TicketData):
    attachment: AttachmentData


# -- milestones (service tickets) ------------------------------------------------------


class Progress(_Data):
    total: int
    done: int


class MilestoneData(_Data):
    """The milestone after the change."""

    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str
    due_date: date | None
    state: str = Field(description="open or closed")
    progress: Progress
    version: int
    created_at: Instant
    updated_at: Instant
    deleted: bool


class MilestoneCreated(MilestoneData):
    pass


class MilestoneUpdated(MilestoneData):
    changes: Changes


class MilestoneDeleted(MilestoneData):
    pass


# -- tracker configuration (service tickets, docs/adr/0040) ---------------------------------


class ProjectWorkflowChanged(_Data):
    """A project's workflow was replaced; `moved` counts the tickets moved off each removed
    status (each with its own `ticket.status_changed`)."""

    project_id: uuid.UUID
    version: int
    workflow: dict[str, Any] = Field(description="statuses, initial and transitions, as GET")
    moved: dict[str, int]


class ProjectTicketTypesChanged(_Data):
    """A project's ticket types were replaced; `moved` as for the workflow."""

    project_id: uuid.UUID
    version: int
    types: list[dict[str, Any]]
    moved: dict[str, int]


class ProjectFieldsChanged(_Data):
    """A custom field of the project was created, updated or deleted."""

    project_id: uuid.UUID
    change: str = Field(description="created, updated or deleted")
    field: dict[str, Any] = Field(description="The field's definition after the change, as GET")


# -- webhooks (service webhooks, docs/adr/0043) ---------------------------------------------


class WebhookData(_Data):
    """The webhook after the change; never its secret."""

    id: uuid.UUID
    project_id: uuid.UUID
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_at: Instant | None
    version: int
    created_at: Instant
    updated_at: Instant
    deleted: bool


class WebhookCreated(WebhookData):
    pass


class WebhookUpdated(WebhookData):
    changes: Changes


class WebhookDeleted(WebhookData):
    pass


class WebhookDisabled(WebhookData):
    """Every attempt failed for days: the endpoint is off until a maintainer turns it on."""

    maintainer_ids: list[uuid.UUID] = Field(
        description="The project's maintainers and owners when it was disabled (they are told)"
    )


# Routing key (event name) -> the model of its `data`, in the order of docs/api.md.
EVENT_DATA: dict[str, type[BaseModel]] = {
    "user.registered": UserRegistered,
    "user.deactivated": UserDeactivated,
    "auth.session_revoked": AuthSessionRevoked,
    "project.created": ProjectCreated,
    "project.updated": ProjectUpdated,
    "project.archived": ProjectArchived,
    "project.deleted": ProjectDeleted,
    "project.member_added": ProjectMemberAdded,
    "project.member_role_changed": ProjectMemberRoleChanged,
    "project.member_removed": ProjectMemberRemoved,
    "ticket.created": TicketCreated,
    "ticket.updated": TicketUpdated,
    "ticket.assigned": TicketAssigned,
    "ticket.status_changed": TicketStatusChanged,
    "ticket.commented": TicketCommented,
    "ticket.deleted": TicketDeleted,
    "ticket.related": TicketRelated,
    "ticket.unrelated": TicketUnrelated,
    "ticket.unblocked": TicketUnblocked,
    "ticket.attachment_added": TicketAttachmentAdded,
    "ticket.attachment_removed": TicketAttachmentRemoved,
    "milestone.created": MilestoneCreated,
    "milestone.updated": MilestoneUpdated,
    "milestone.deleted": MilestoneDeleted,
    "project.workflow_changed": ProjectWorkflowChanged,
    "project.ticket_types_changed": ProjectTicketTypesChanged,
    "project.fields_changed": ProjectFieldsChanged,
    "webhook.created": WebhookCreated,
    "webhook.updated": WebhookUpdated,
    "webhook.deleted": WebhookDeleted,
    "webhook.disabled": WebhookDisabled,
}

EVENT_SOURCES: dict[str, str] = {"user": "auth", "auth": "auth", "project": "projects"} | {
    "ticket": "tickets",
    "milestone": "tickets",
    "webhook": "webhooks",
}


# Events named like another service's that the tickets service publishes: a project's
# tracker configuration is the tickets service's (docs/adr/0040).
NAMED_SOURCES: dict[str, str] = {
    "project.workflow_changed": "tickets",
    "project.ticket_types_changed": "tickets",
    "project.fields_changed": "tickets",
}


def source_service(name: str) -> str:
    """The service that publishes event `name` (`ticket.assigned` -> `tickets`)."""
    return NAMED_SOURCES.get(name) or EVENT_SOURCES[name.split(".", 1)[0]]


def validate_data(name: str, data: dict[str, Any]) -> BaseModel:
    """`data` checked against the contract of event `name` (ValidationError otherwise)."""
    return EVENT_DATA[name].model_validate(data)
