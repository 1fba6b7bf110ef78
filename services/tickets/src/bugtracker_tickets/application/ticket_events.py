"""A ticket's events: what happened to it, written to the outbox in the same unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.domain.tickets import Ticket

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


def other_ticket(ticket: Ticket) -> dict[str, Any]:
    """Another ticket as an event names it (event_schemas.RelatedTicket): a relation's
    other side, the blocker that unblocked one."""
    return {"id": ticket.id, "key": ticket.key, "project_id": ticket.project_id}
