"""Who is told about an event: pure rules, no database, no broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from bugtracker_notifications.domain.errors import MalformedEventError
from bugtracker_notifications.domain.notifications import (
    EventFacts,
    NotificationDraft,
    handled_events,
    plan_notifications,
)

ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
ANN = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
BOB = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
TICKET = uuid.UUID("00000000-0000-0000-0000-0000000000c1")
PROJECT = uuid.UUID("00000000-0000-0000-0000-0000000000d1")


def assigned(
    assignee: uuid.UUID | None, *, actor: uuid.UUID | None = ACTOR, **data: Any
) -> EventFacts:
    return EventFacts(
        id=uuid.uuid4(),
        name="ticket.assigned",
        actor_id=actor,
        data={
            "id": str(TICKET),
            "key": "BUG-1",
            "project_id": str(PROJECT),
            "title": "Crash on save",
            "assignee_id": str(assignee) if assignee else None,
            "changes": {"assignee_id": {"from": str(BOB), "to": str(assignee)}},
        }
        | data,
    )


def test_the_new_assignee_is_told_who_what_and_where() -> None:
    assert plan_notifications(assigned(ANN)) == [
        NotificationDraft(
            user_id=ANN,
            type="ticket.assigned",
            summary="You were assigned BUG-1: Crash on save",
            project_id=PROJECT,
            ticket_id=TICKET,
            ticket_key="BUG-1",
        )
    ]


def test_the_previous_assignee_is_not_told() -> None:
    assert [draft.user_id for draft in plan_notifications(assigned(ANN))] == [ANN]


def test_nobody_is_told_of_their_own_assignment() -> None:
    assert plan_notifications(assigned(ACTOR)) == []


def test_unassigning_tells_nobody() -> None:
    assert plan_notifications(assigned(None)) == []


def test_an_assignment_without_an_actor_still_tells_the_assignee() -> None:
    assert [draft.user_id for draft in plan_notifications(assigned(ANN, actor=None))] == [ANN]


def test_a_long_title_is_shortened_in_the_summary() -> None:
    [draft] = plan_notifications(assigned(ANN, title="x" * 500))
    assert draft.summary == "You were assigned BUG-1: " + "x" * 199 + "…"


@pytest.mark.parametrize("name", ["ticket.created", "user.registered", "ticket.deleted"])
def test_events_without_a_rule_tell_nobody(name: str) -> None:
    event = assigned(ANN)
    assert plan_notifications(EventFacts(event.id, name, event.actor_id, event.data)) == []


@pytest.mark.parametrize(
    "data",
    [
        {"assignee_id": "not-a-uuid"},
        {"key": None},
        {"title": ""},
        {"id": None},
        {"project_id": "nope"},
    ],
)
def test_a_malformed_assignment_is_an_error_not_a_silent_drop(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedEventError):
        plan_notifications(assigned(ANN, **data))


def test_the_consumer_binds_exactly_the_events_that_have_rules() -> None:
    assert handled_events() == ["ticket.assigned"]
