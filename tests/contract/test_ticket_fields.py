"""A ticket's fields are declared once per boundary: the domain `Ticket`, the `tickets`
table, the API's `TicketResponse` and the `data` of ticket events (event_schemas
`TicketData`). The domain is the reference; every other boundary carries each of its
fields, except for the deliberate differences listed here with their reason. A field added
to one boundary and not to the others (or an exception that no longer holds) fails."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from bugtracker_shared.event_schemas import TicketData
from bugtracker_tickets.api.schemas import TicketResponse
from bugtracker_tickets.domain.tickets import Priority, Ticket
from bugtracker_tickets.infrastructure.tables import tickets

DOMAIN = {field.name for field in dataclasses.fields(Ticket)}

BOUNDARIES: dict[str, set[str]] = {
    "table": set(tickets.c.keys()),
    "api": set(TicketResponse.model_fields),
    "event": set(TicketData.model_fields),
}

# Domain fields a boundary leaves out on purpose, and why.
OMITTED: dict[str, dict[str, str]] = {
    "table": {},
    "api": {
        "number": "the API names a ticket by its `key`, which holds the number",
        "deleted_at": "a deleted ticket is not served (404); restoring it is an action",
    },
    "event": {
        "number": "consumers name a ticket by its `key`, which holds the number",
        "description": "events stay small; a consumer that needs the text asks the API",
        "description_html": "rendered for display only (docs/adr/0025)",
        "deleted_at": "events say `deleted` (renamed below): whether, not when",
    },
}

# Fields a boundary has and the domain has not, and why.
ADDED: dict[str, dict[str, str]] = {
    "table": {
        "priority_rank": "generated sort key (priority by rank) for an index",
        "due_sort": "generated sort key (no due date last) for an index",
        "search": "generated full-text vector over title and description",
        "open_blockers": "unfinished blockers, kept by triggers for the is=blocked index",
    },
    "api": {},
    "event": {
        "deleted": "`deleted_at is not None`: the ticket is deleted (it can be restored)",
        "watchers": "who watches the ticket, its own table; carried for notifications",
    },
}


@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
def test_every_boundary_declares_the_tickets_fields(boundary: str) -> None:
    omitted, added = OMITTED[boundary], ADDED[boundary]
    assert set(omitted) <= DOMAIN, f"{boundary}: stale omissions {set(omitted) - DOMAIN}"
    assert not set(added) & DOMAIN, f"{boundary}: the domain has {set(added) & DOMAIN}"
    declared = BOUNDARIES[boundary]
    expected = (DOMAIN - set(omitted)) | set(added)
    assert declared - expected == set(), f"{boundary} has fields the domain lacks"
    assert expected - declared == set(), f"{boundary} lacks fields of the domain"


def test_the_producer_fills_every_field_of_the_ticket_event() -> None:
    now = datetime.now(UTC)
    ticket = Ticket(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        key="BUG-1",
        number=1,
        title="t",
        description="d",
        type="bug",
        priority=Priority.LOW,
        status="open",
        reporter_id=uuid.uuid4(),
        created_at=now,
        updated_at=now,
    )
    assert set(ticket.event_fields([])) == set(TicketData.model_fields)
