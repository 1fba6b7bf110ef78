"""Notifications and the rules that decide who is told about an event; no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bugtracker_notifications.domain.errors import MalformedEventError

TITLE_MAX_CHARS = 200


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the rules need to know about an event: its name (routing key), who acted and
    the aggregate's state after the change."""

    id: uuid.UUID
    name: str
    actor_id: uuid.UUID | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """One user to notify about one event, and what to tell them."""

    user_id: uuid.UUID
    type: str
    summary: str
    project_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    ticket_key: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    event_id: uuid.UUID
    actor_id: uuid.UUID | None
    project_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    ticket_key: str | None
    summary: str
    created_at: datetime
    read_at: datetime | None = None

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


def parse_optional_uuid(value: object, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise MalformedEventError(f"{field} is not a UUID: {value!r}") from exc


def _required_uuid(data: Mapping[str, Any], field: str) -> uuid.UUID:
    value = parse_optional_uuid(data.get(field), field)
    if value is None:
        raise MalformedEventError(f"the event data has no {field}")
    return value


def _required_text(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"the event data has no {field}")
    return value


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ticket_assigned(event: EventFacts) -> list[NotificationDraft]:
    assignee_id = parse_optional_uuid(event.data.get("assignee_id"), "assignee_id")
    if assignee_id is None:  # unassigned: nobody to tell
        return []
    key = _required_text(event.data, "key")
    title = _shorten(_required_text(event.data, "title"), TITLE_MAX_CHARS)
    return [
        NotificationDraft(
            user_id=assignee_id,
            type="ticket.assigned",
            summary=f"You were assigned {key}: {title}",
            project_id=_required_uuid(event.data, "project_id"),
            ticket_id=_required_uuid(event.data, "id"),
            ticket_key=key,
        )
    ]


def _uuid_list(data: Mapping[str, Any], field: str) -> list[uuid.UUID]:
    """A list of user ids; a missing (or null) list is an empty one."""
    values = data.get(field)
    if values is None:
        return []
    if not isinstance(values, list):
        raise MalformedEventError(f"{field} is not a list")
    ids = [parse_optional_uuid(value, field) for value in values]
    return [id_ for id_ in ids if id_ is not None]


@dataclass(frozen=True, slots=True)
class _TicketRef:
    id: uuid.UUID
    project_id: uuid.UUID
    key: str
    title: str

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> _TicketRef:
        return cls(
            id=_required_uuid(data, "id"),
            project_id=_required_uuid(data, "project_id"),
            key=_required_text(data, "key"),
            title=_shorten(_required_text(data, "title"), TITLE_MAX_CHARS),
        )

    def draft(self, user_id: uuid.UUID, type_: str, summary: str) -> NotificationDraft:
        return NotificationDraft(
            user_id=user_id,
            type=type_,
            summary=summary,
            project_id=self.project_id,
            ticket_id=self.id,
            ticket_key=self.key,
        )


def _ticket_audience(data: Mapping[str, Any]) -> list[uuid.UUID]:
    """Reporter, assignee and watchers of the ticket after the change."""
    people = [
        parse_optional_uuid(data.get("reporter_id"), "reporter_id"),
        parse_optional_uuid(data.get("assignee_id"), "assignee_id"),
        *_uuid_list(data, "watchers"),
    ]
    return [person for person in people if person is not None]


def _status_change(data: Mapping[str, Any]) -> tuple[str | None, str]:
    changes = data.get("changes")
    change = changes.get("status") if isinstance(changes, Mapping) else None
    if isinstance(change, Mapping) and isinstance(change.get("to"), str):
        before = change.get("from")
        return (before if isinstance(before, str) else None), str(change["to"])
    return None, _required_text(data, "status")


def _ticket_status_changed(event: EventFacts) -> list[NotificationDraft]:
    ticket = _TicketRef.of(event.data)
    before, after = _status_change(event.data)
    moved = f"from {before} to {after}" if before else f"to {after}"
    summary = f"{ticket.key} moved {moved}: {ticket.title}"
    return [
        ticket.draft(user, "ticket.status_changed", summary)
        for user in _ticket_audience(event.data)
    ]


def _ticket_commented(event: EventFacts) -> list[NotificationDraft]:
    ticket = _TicketRef.of(event.data)
    comment = event.data.get("comment")
    if not isinstance(comment, Mapping):
        raise MalformedEventError("the event data has no comment")
    author = parse_optional_uuid(comment.get("author_id"), "comment.author_id")
    # Mentions first: a mentioned watcher gets the mention, not a second notification.
    drafts = [
        ticket.draft(
            user, "ticket.mentioned", f"You were mentioned on {ticket.key}: {ticket.title}"
        )
        for user in _uuid_list(comment, "mentions")
    ] + [
        ticket.draft(user, "ticket.commented", f"New comment on {ticket.key}: {ticket.title}")
        for user in _ticket_audience(event.data)
    ]
    # The author is the actor even when an event lacks `actorid`.
    return [draft for draft in drafts if draft.user_id != author]


def _project_member_added(event: EventFacts) -> list[NotificationDraft]:
    project_key = _required_text(event.data, "project_key")
    role = _required_text(event.data, "role")
    return [
        NotificationDraft(
            user_id=_required_uuid(event.data, "user_id"),
            type="project.member_added",
            summary=f"You were added to {project_key} as {role}",
            project_id=_required_uuid(event.data, "project_id"),
        )
    ]


Rule = Callable[[EventFacts], list[NotificationDraft]]

# One rule per event name; the consumer binds exactly these routing keys. A rule lists the
# most specific reason first (a mention before a plain comment): the first draft for a user
# wins, because a user gets at most one notification per event.
RULES: Mapping[str, Rule] = {
    "ticket.assigned": _ticket_assigned,
    "ticket.status_changed": _ticket_status_changed,
    "ticket.commented": _ticket_commented,
    "project.member_added": _project_member_added,
    # Notifies nobody; the consumer notes who left, so they hear nothing more of the
    # project (docs/adr/0030).
    "project.member_removed": lambda _event: [],
}


def handled_events() -> list[str]:
    """The event names (routing keys) that can produce notifications."""
    return list(RULES)


def plan_notifications(event: EventFacts) -> list[NotificationDraft]:
    """Who is told about `event`, and what: never the actor, at most once per user."""
    rule = RULES.get(event.name)
    if rule is None:
        return []
    drafts: list[NotificationDraft] = []
    seen: set[uuid.UUID] = set()
    for draft in rule(event):
        if draft.user_id == event.actor_id or draft.user_id in seen:
            continue
        seen.add(draft.user_id)
        drafts.append(draft)
    return drafts
