"""Tickets changed in bulk by the service itself (docs/adr/0040): moved off a removed
status, type or option by a configuration change, or cleared of an ex-member's `user`
values. Each ticket gets what a single change would give it: a version bump, its history
entries and its event, every kind of row written once for the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.application.ticket_events import ticket_event
from bugtracker_tickets.domain.configuration import FieldDef
from bugtracker_tickets.domain.tickets import HistoryEntry, Ticket

# A change of one ticket: sets it, and returns `{field: {"from", "to"}}`.
Move = Callable[[Ticket], dict[str, dict[str, Any]]]


async def apply_moves(
    uow: UnitOfWork,
    principal: Principal,
    batch: Sequence[Ticket],
    move: Move,
    *,
    reindex: FieldDef | None = None,
) -> None:
    """`move` each ticket of `batch` (locked by the caller) and write it with its history
    and event: `ticket.status_changed` when its status or its status's category moved,
    else `ticket.updated`; with `reindex`, that field's values in the filter index too."""
    if not batch:
        return
    now = datetime.now(UTC)
    entries: list[HistoryEntry] = []
    events: list[CloudEvent] = []
    watchers = await uow.watchers.list_many([t.id for t in batch])
    for ticket in batch:
        changes = move(ticket)
        ticket.touch(now)
        entries += [
            HistoryEntry(ticket.id, now, principal.user_id, name, c["from"], c["to"])
            for name, c in changes.items()
        ]
        status_moved = "status" in changes or "status_category" in changes
        name = "ticket.status_changed" if status_moved else "ticket.updated"
        events.append(ticket_event(name, ticket, principal, watchers[ticket.id], changes=changes))
        if reindex is not None:
            await uow.configuration.index_values(
                ticket.id, [(reindex, ticket.fields.get(reindex.key))]
            )
    await uow.tickets.update_many(batch)
    await uow.history.add(entries)
    await uow.outbox.add_many(events)


def drop_value(ticket: Ticket, definition: FieldDef) -> dict[str, dict[str, Any]]:
    """The ticket's value of the field removed."""
    fields = dict(ticket.fields)
    old = fields.pop(definition.key, None)
    ticket.fields = fields
    return {f"fields.{definition.key}": {"from": old, "to": None}}
