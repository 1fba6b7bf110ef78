"""A project's activity feed (docs/adr/0046): what an event says happened, as one entry.

`activity_of` is pure: the events the service already publishes (its own `ticket.*`) and
consumes (the projects service's `project.member_*`) in, at most one entry out. An event
of any other type, or one that says nothing worth showing, makes none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bugtracker_shared.event_schemas import (
    FieldChange,
    MembershipData,
    ProjectMemberRoleChanged,
    TicketAttachmentAdded,
    TicketAttachmentRemoved,
    TicketData,
    TicketStatusChanged,
    TicketUpdated,
)
from bugtracker_shared.events import CloudEvent

# The actor of a change the service makes itself when the event that caused it names
# none (use_cases.SYSTEM_ACTOR): shown as no actor.
_SYSTEM_ACTOR = uuid.UUID(int=0)
# Fields whose values are too long to quote in a sentence.
_UNQUOTED = frozenset({"description"})
_VALUE_CHARS = 80
SUMMARY_CHARS = 500


@dataclass(frozen=True)
class ActivityEntry:
    """One line of a project's feed; `id` is the feed's own, set once stored."""

    event_id: uuid.UUID
    project_id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    kind: str
    summary: str
    ticket_id: uuid.UUID | None = None
    ticket_key: str | None = None
    id: int | None = None


# The event types the feed is built from (the routing keys of its queue), and the kind
# each becomes (`ticket.updated` of a restore becomes `ticket.restored`).
KINDS: dict[str, str] = {
    "ticket.created": "ticket.created",
    "ticket.updated": "ticket.updated",
    "ticket.assigned": "ticket.assigned",
    "ticket.status_changed": "ticket.transitioned",
    "ticket.commented": "ticket.commented",
    "ticket.deleted": "ticket.deleted",
    "ticket.attachment_added": "attachment.added",
    "ticket.attachment_removed": "attachment.removed",
    "project.member_added": "member.added",
    "project.member_role_changed": "member.role_changed",
    "project.member_removed": "member.removed",
}
ACTIVITY_EVENTS = tuple(KINDS)


def _shown(value: Any) -> str:
    if value in (None, "", []):
        return "none"
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _clipped(summary: str) -> str:
    return summary if len(summary) <= SUMMARY_CHARS else summary[: SUMMARY_CHARS - 1] + "…"


def _changed(field: str, change: FieldChange) -> str:
    if field in _UNQUOTED:
        return f"changed the {field}"
    return f"changed {field} from {_shown(change.from_)} to {_shown(change.to)}"


# What each ticket event says: its kind and sentence, None when it says nothing to show.
Shown = tuple[str, str] | None


def _updated(data: dict[str, Any]) -> Shown:
    changes = TicketUpdated.model_validate(data).changes
    if set(changes) == {"deleted"}:
        return ("ticket.restored", "restored the ticket") if not changes["deleted"].to else None
    shown = [_changed(name, change) for name, change in changes.items() if name != "deleted"]
    return ("ticket.updated", "; ".join(shown)) if shown else None


def _created(data: dict[str, Any]) -> Shown:
    ticket = TicketData.model_validate(data)
    return "ticket.created", f"created {ticket.type} “{_shown(ticket.title)}”"


def _assigned(data: dict[str, Any]) -> Shown:
    assignee = TicketData.model_validate(data).assignee_id
    return "ticket.assigned", f"assigned to {assignee}" if assignee else "unassigned"


def _transitioned(data: dict[str, Any]) -> Shown:
    changes = TicketStatusChanged.model_validate(data).changes
    status = changes.get("status") or changes.get("status_category")
    if status is None:
        return None
    moved = f"moved from {_shown(status.from_)} to {_shown(status.to)}"
    resolution = changes.get("resolution")
    if resolution is not None and resolution.to:
        moved += f" (resolution: {_shown(resolution.to)})"
    return "ticket.transitioned", moved


def _attached(data: dict[str, Any]) -> Shown:
    file = TicketAttachmentAdded.model_validate(data).attachment.filename
    return "attachment.added", f"attached “{_shown(file)}”"


def _detached(data: dict[str, Any]) -> Shown:
    file = TicketAttachmentRemoved.model_validate(data).attachment.filename
    return "attachment.removed", f"removed the attachment “{_shown(file)}”"


_TICKET_EVENTS: dict[str, Callable[[dict[str, Any]], Shown]] = {
    "ticket.created": _created,
    "ticket.updated": _updated,
    "ticket.assigned": _assigned,
    "ticket.status_changed": _transitioned,
    "ticket.commented": lambda _: ("ticket.commented", "commented"),
    "ticket.deleted": lambda _: ("ticket.deleted", "deleted the ticket"),
    "ticket.attachment_added": _attached,
    "ticket.attachment_removed": _detached,
}


def _member_summary(name: str, data: dict[str, Any], actor: uuid.UUID | None) -> str:
    member = MembershipData.model_validate(data)
    if name == "project.member_added":
        return f"added {member.user_id} as {member.role}"
    if name == "project.member_role_changed":
        role = ProjectMemberRoleChanged.model_validate(data).changes.get("role")
        before = f" from {_shown(role.from_)}" if role is not None else ""
        return f"changed the role of {member.user_id}{before} to {member.role}"
    if actor == member.user_id:
        return "left the project"
    return f"removed {member.user_id}"


def _actor(event: CloudEvent) -> uuid.UUID | None:
    if not event.actorid:
        return None
    try:
        actor = uuid.UUID(event.actorid)
    except ValueError:
        return None
    return None if actor == _SYSTEM_ACTOR else actor


def activity_of(event: CloudEvent) -> ActivityEntry | None:
    """The feed entry `event` makes, or None (a type the feed ignores, nothing to show).
    The consumer has checked `data` against the event's model already."""
    name = event.name
    if name not in KINDS:
        return None
    actor = _actor(event)
    if name.startswith("project.member_"):
        return ActivityEntry(
            event_id=event.id,
            project_id=MembershipData.model_validate(event.data).project_id,
            at=event.time,
            actor_id=actor,
            kind=KINDS[name],
            summary=_clipped(_member_summary(name, event.data, actor)),
        )
    shown = _TICKET_EVENTS[name](event.data)
    if shown is None:
        return None
    kind, summary = shown
    ticket = TicketData.model_validate(event.data)
    return ActivityEntry(
        event_id=event.id,
        project_id=ticket.project_id,
        at=event.time,
        actor_id=actor,
        kind=kind,
        summary=_clipped(summary),
        ticket_id=ticket.id,
        ticket_key=ticket.key,
    )
