"""Writing what happened to a ticket: its event in the outbox, and its comments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.event_schemas import (
    Comment as CommentData,
)
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import ProjectDirectory, UnitOfWork
from bugtracker_tickets.domain.tickets import Comment, ProjectAccess, Ticket, mentioned

SERVICE = "tickets"


async def record(
    uow: UnitOfWork,
    name: str,
    ticket: Ticket,
    principal: Principal,
    *,
    watchers: list[uuid.UUID] | None = None,
    **extra: Any,
) -> None:
    """One event for one change: the ticket after it (with its watchers, read unless the
    caller knows them) plus `extra`."""
    if watchers is None:
        watchers = await uow.watchers.list(ticket.id)
    await uow.outbox.add(ticket_event(name, ticket, principal, watchers, **extra))


def ticket_event(
    name: str, ticket: Ticket, principal: Principal, watchers: list[uuid.UUID], **extra: Any
) -> CloudEvent:
    return new_event(
        name,
        service=SERVICE,
        subject=ticket.id,
        sequence=ticket.version,
        # The model of the event's `data`: the ticket after the change, plus what the
        # event adds (`changes`, `comment`).
        data=EVENT_DATA[name](**ticket.event_fields(watchers), **extra),
        actor_id=principal.user_id,
        correlation_id=current_request_id(),
    )


async def mentions_in(
    projects: ProjectDirectory, principal: Principal, access: ProjectAccess, body: str
) -> list[uuid.UUID]:
    """Members named with `@` in `body`; nobody outside the project can be mentioned."""
    if "@" not in body:
        return []
    members = await projects.members(access.project_id, principal)
    return mentioned(body, [(m.user_id, m.display_name, m.email) for m in members])


def new_comment(
    ticket: Ticket, principal: Principal, body: str, body_html: str, mentions: list[uuid.UUID]
) -> Comment:
    now = datetime.now(UTC)
    return Comment(
        id=uuid.uuid4(),
        ticket_id=ticket.id,
        author_id=principal.user_id,
        body=body,
        body_html=body_html,
        mentions=mentions,
        created_at=now,
        updated_at=now,
    )


async def store_comment(
    uow: UnitOfWork, ticket: Ticket, principal: Principal, comment: Comment
) -> None:
    """Write the comment, make its author a watcher and record `ticket.commented`."""
    await uow.comments.add(comment)
    await uow.watchers.add(ticket.id, principal.user_id, comment.created_at)
    await record(
        uow,
        "ticket.commented",
        ticket,
        principal,
        comment=CommentData(
            id=comment.id,
            author_id=comment.author_id,
            body=comment.body,
            mentions=list(comment.mentions),
        ),
    )
