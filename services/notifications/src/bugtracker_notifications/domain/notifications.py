"""Notifications and the rules that decide who is told about an event; no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from bugtracker_shared.event_schemas import (
    ProjectMemberAdded,
    ProjectMemberRemoved,
    TicketAssigned,
    TicketCommented,
    TicketData,
    TicketStatusChanged,
    TicketUnblocked,
    WebhookDisabled,
)
from pydantic import BaseModel, ValidationError

from bugtracker_notifications.domain.errors import MalformedEventError

TITLE_MAX_CHARS = 200
# A summary is cut to this length whatever the event holds (a status or a project key is
# not bounded by the event contract): the live feed sends each notification whole as a
# PostgreSQL NOTIFY payload, limited to 8000 bytes (docs/adr/0036). 600 characters are at
# most 3600 bytes of JSON (a control character is escaped to 6 bytes).
SUMMARY_MAX_CHARS = 600

D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the rules need to know about an event: its name (routing key), who acted and
    the aggregate's state after the change, as the model of the event's `data`
    (event_schemas; see `event_facts`)."""

    id: uuid.UUID
    name: str
    actor_id: uuid.UUID | None
    data: BaseModel


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """One user to notify about one event, and what to tell them.

    `group_key` names a change that spans several events (a bulk change's id): a user gets
    at most one notification per group, the one of the first of its events handled; the
    others of the group notify them of nothing (the database enforces it)."""

    user_id: uuid.UUID
    type: str
    summary: str
    project_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    ticket_key: str | None = None
    group_key: uuid.UUID | None = None
    # The ticket's title, for an e-mail's subject (`[KEY-1] Title`).
    title: str | None = None


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
    # The group it stands for as a whole (NotificationDraft.group_key); None for most.
    group_key: uuid.UUID | None = None

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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class _TicketRef:
    id: uuid.UUID
    project_id: uuid.UUID
    key: str
    title: str

    @classmethod
    def of(cls, data: TicketData) -> _TicketRef:
        return cls(
            id=data.id,
            project_id=data.project_id,
            key=data.key,
            title=_shorten(data.title, TITLE_MAX_CHARS),
        )

    def draft(
        self,
        user_id: uuid.UUID,
        type_: str,
        summary: str,
        *,
        group_key: uuid.UUID | None = None,
    ) -> NotificationDraft:
        return NotificationDraft(
            user_id=user_id,
            type=type_,
            summary=_shorten(summary, SUMMARY_MAX_CHARS),
            project_id=self.project_id,
            ticket_id=self.id,
            ticket_key=self.key,
            group_key=group_key,
            title=self.title,
        )


def _ticket_assigned(data: TicketAssigned) -> list[NotificationDraft]:
    if data.assignee_id is None:  # unassigned: nobody to tell
        return []
    ticket = _TicketRef.of(data)
    if data.bulk is None:
        summary = f"You were assigned {ticket.key}: {ticket.title}"
        return [ticket.draft(data.assignee_id, "ticket.assigned", summary)]
    # One event per ticket of a bulk change, one notification per assignee and bulk: the
    # first of its events handled tells of the whole change (the others add nothing).
    summary = (
        f"You were assigned {data.bulk.size} tickets in a bulk change, "
        f"e.g. {ticket.key}: {ticket.title}"
        if data.bulk.size > 1
        else f"You were assigned {ticket.key}: {ticket.title}"
    )
    return [ticket.draft(data.assignee_id, "ticket.assigned", summary, group_key=data.bulk.id)]


def _ticket_unblocked(data: TicketUnblocked) -> list[NotificationDraft]:
    """The assignee can start: the ticket's last unfinished blocker was finished."""
    if data.assignee_id is None:  # nobody works on it yet: nobody to tell
        return []
    ticket = _TicketRef.of(data)
    blocker = _shorten(data.blocker.key, TITLE_MAX_CHARS)
    summary = f"{ticket.key} is unblocked: {ticket.title} ({blocker} was finished)"
    return [ticket.draft(data.assignee_id, "ticket.unblocked", summary)]


def _ticket_audience(data: TicketData) -> list[uuid.UUID]:
    """Reporter, assignee and watchers of the ticket after the change."""
    people = [data.reporter_id, data.assignee_id, *data.watchers]
    return [person for person in people if person is not None]


def _status_change(data: TicketStatusChanged) -> tuple[str | None, str]:
    change = data.changes.get("status")
    if change is not None and isinstance(change.to, str):
        before = change.from_
        return (before if isinstance(before, str) else None), change.to
    return None, data.status


def _ticket_status_changed(data: TicketStatusChanged) -> list[NotificationDraft]:
    ticket = _TicketRef.of(data)
    before, after = _status_change(data)
    moved = f"from {before} to {after}" if before else f"to {after}"
    summary = f"{ticket.key} moved {moved}: {ticket.title}"
    return [ticket.draft(user, "ticket.status_changed", summary) for user in _ticket_audience(data)]


def _ticket_commented(data: TicketCommented) -> list[NotificationDraft]:
    ticket = _TicketRef.of(data)
    # Mentions first: a mentioned watcher gets the mention, not a second notification.
    drafts = [
        ticket.draft(
            user, "ticket.mentioned", f"You were mentioned on {ticket.key}: {ticket.title}"
        )
        for user in data.comment.mentions
    ] + [
        ticket.draft(user, "ticket.commented", f"New comment on {ticket.key}: {ticket.title}")
        for user in _ticket_audience(data)
    ]
    # The author is the actor even when an event lacks `actorid`.
    return [draft for draft in drafts if draft.user_id != data.comment.author_id]


def _project_member_added(data: ProjectMemberAdded) -> list[NotificationDraft]:
    return [
        NotificationDraft(
            user_id=data.user_id,
            type="project.member_added",
            summary=_shorten(
                f"You were added to {data.project_key} as {data.role}", SUMMARY_MAX_CHARS
            ),
            project_id=data.project_id,
        )
    ]


def _webhook_disabled(data: WebhookDisabled) -> list[NotificationDraft]:
    """The project's maintainers (as the webhooks service read them when it disabled it)."""
    summary = _shorten(
        f"A webhook was turned off after days of failed deliveries: {data.url}",
        SUMMARY_MAX_CHARS,
    )
    return [
        NotificationDraft(
            user_id=user_id,
            type="webhook.disabled",
            summary=summary,
            project_id=data.project_id,
        )
        for user_id in data.maintainer_ids
    ]


def _nobody(_data: BaseModel) -> list[NotificationDraft]:
    return []


@dataclass(frozen=True, slots=True)
class Rule(Generic[D]):
    """Who hears of an event whose `data` is a `model` (the event's contract in
    event_schemas)."""

    model: type[D]
    plan: Callable[[D], list[NotificationDraft]]

    def drafts(self, data: BaseModel) -> list[NotificationDraft]:
        if not isinstance(data, self.model):
            raise MalformedEventError(
                f"expected the data of a {self.model.__name__}, got {type(data).__name__}"
            )
        return self.plan(data)


# One rule per event name, with the model of its `data`; the consumer binds exactly these
# routing keys. A rule lists the most specific reason first (a mention before a plain
# comment): the first draft for a user wins, because a user gets at most one notification
# per event (and one per group: see NotificationDraft.group_key).
RULES: Mapping[str, Rule[Any]] = {
    "ticket.assigned": Rule(TicketAssigned, _ticket_assigned),
    "ticket.status_changed": Rule(TicketStatusChanged, _ticket_status_changed),
    "ticket.commented": Rule(TicketCommented, _ticket_commented),
    "ticket.unblocked": Rule(TicketUnblocked, _ticket_unblocked),
    "project.member_added": Rule(ProjectMemberAdded, _project_member_added),
    # Notifies nobody; the consumer notes who left, so they hear nothing more of the
    # project (docs/adr/0030).
    "project.member_removed": Rule(ProjectMemberRemoved, _nobody),
    "webhook.disabled": Rule(WebhookDisabled, _webhook_disabled),
}


def event_facts(
    id_: uuid.UUID, name: str, actor_id: uuid.UUID | None, data: Mapping[str, Any]
) -> EventFacts:
    """The facts of an event with a rule, its `data` parsed (once) into the rule's model;
    MalformedEventError if it does not match."""
    rule = RULES.get(name)
    if rule is None:
        raise MalformedEventError(f"no rule handles {name}")
    try:
        parsed = rule.model.model_validate(data)
    except ValidationError as exc:
        raise MalformedEventError(f"the data of {name} does not match its schema: {exc}") from exc
    return EventFacts(id=id_, name=name, actor_id=actor_id, data=parsed)


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
    for draft in rule.drafts(event.data):
        if draft.user_id == event.actor_id or draft.user_id in seen:
            continue
        seen.add(draft.user_id)
        drafts.append(draft)
    return drafts
