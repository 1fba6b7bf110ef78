"""Who is told about an event: pure rules, no database, no broker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from bugtracker_notifications.domain.errors import MalformedEventError
from bugtracker_notifications.domain.notifications import (
    SUMMARY_MAX_CHARS,
    EventFacts,
    NotificationDraft,
    event_facts,
    handled_events,
    plan_notifications,
)
from bugtracker_shared.event_schemas import TicketCreated

ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
ANN = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
BOB = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
TICKET = uuid.UUID("00000000-0000-0000-0000-0000000000c1")
PROJECT = uuid.UUID("00000000-0000-0000-0000-0000000000d1")
REPORTER = uuid.UUID("00000000-0000-0000-0000-0000000000e1")
ASSIGNEE = uuid.UUID("00000000-0000-0000-0000-0000000000e2")
WATCHER = uuid.UUID("00000000-0000-0000-0000-0000000000e3")


def ticket_data(**data: Any) -> dict[str, Any]:
    """A ticket event's `data` as the tickets service publishes it."""
    return {
        "id": str(TICKET),
        "key": "BUG-1",
        "project_id": str(PROJECT),
        "title": "Crash on save",
        "type": "bug",
        "priority": "high",
        "status": "in_progress",
        "resolution": None,
        "reporter_id": str(REPORTER),
        "assignee_id": str(ASSIGNEE),
        "labels": [],
        "due_date": None,
        "version": 2,
        "created_at": "2030-01-01T00:00:00+00:00",
        "updated_at": "2030-01-01T00:00:00+00:00",
        "deleted": False,
        "watchers": [str(REPORTER), str(ASSIGNEE), str(WATCHER)],
    } | data


def facts(name: str, actor: uuid.UUID | None, data: dict[str, Any]) -> EventFacts:
    """The event as the use case hands it to the rules: `data` parsed into its model."""
    return event_facts(uuid.uuid4(), name, actor, data)


def assigned(
    assignee: uuid.UUID | None, *, actor: uuid.UUID | None = ACTOR, **data: Any
) -> EventFacts:
    changes = {"assignee_id": {"from": str(BOB), "to": str(assignee) if assignee else None}}
    ticket = ticket_data(assignee_id=str(assignee) if assignee else None, watchers=[])
    return facts("ticket.assigned", actor, ticket | {"changes": changes} | data)


def test_the_new_assignee_is_told_who_what_and_where() -> None:
    assert plan_notifications(assigned(ANN)) == [
        NotificationDraft(
            user_id=ANN,
            type="ticket.assigned",
            summary="You were assigned BUG-1: Crash on save",
            project_id=PROJECT,
            ticket_id=TICKET,
            ticket_key="BUG-1",
            title="Crash on save",
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
        {"title": None},
        {"id": None},
        {"project_id": "nope"},
        {"changes": None},
    ],
)
def test_a_malformed_assignment_is_an_error_not_a_silent_drop(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedEventError):
        plan_notifications(assigned(ANN, **data))


def test_the_consumer_binds_exactly_the_events_that_have_rules() -> None:
    assert handled_events() == [
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.commented",
        "ticket.unblocked",
        "project.member_added",
        "project.member_removed",  # notifies nobody; marks the user as gone (ADR 0030)
        "webhook.disabled",
    ]


@pytest.mark.parametrize(
    "name", ["ticket.related", "ticket.unrelated", "milestone.created", "milestone.updated"]
)
def test_planning_events_other_than_unblocked_are_not_consumed(name: str) -> None:
    """The consumer binds only the keys of RULES: these are never delivered to it."""
    assert name not in handled_events()


BULK = uuid.UUID("00000000-0000-0000-0000-0000000000f1")


def bulk_assigned(assignee: uuid.UUID | None, *, size: int = 12, **data: Any) -> EventFacts:
    return assigned(assignee, bulk={"id": str(BULK), "size": size}, **data)


def test_a_bulk_assignment_tells_of_the_whole_change_grouped_by_the_bulk() -> None:
    assert plan_notifications(bulk_assigned(ANN)) == [
        NotificationDraft(
            user_id=ANN,
            type="ticket.assigned",
            summary="You were assigned 12 tickets in a bulk change, e.g. BUG-1: Crash on save",
            project_id=PROJECT,
            ticket_id=TICKET,
            ticket_key="BUG-1",
            group_key=BULK,
            title="Crash on save",
        )
    ]


def test_a_bulk_of_one_reads_as_a_plain_assignment() -> None:
    [draft] = plan_notifications(bulk_assigned(ANN, size=1))
    assert (draft.summary, draft.group_key) == ("You were assigned BUG-1: Crash on save", BULK)


def test_a_plain_assignment_belongs_to_no_group() -> None:
    [draft] = plan_notifications(assigned(ANN))
    assert draft.group_key is None


def test_a_bulk_assignment_tells_neither_the_actor_nor_anybody_on_unassign() -> None:
    assert plan_notifications(bulk_assigned(ACTOR)) == []
    assert plan_notifications(bulk_assigned(None)) == []


@pytest.mark.parametrize("bulk", [{"id": "nope", "size": 2}, {"id": str(BULK)}, "x"])
def test_a_malformed_bulk_is_an_error(bulk: object) -> None:
    with pytest.raises(MalformedEventError):
        plan_notifications(assigned(ANN, bulk=bulk))


BLOCKER = {"id": "00000000-0000-0000-0000-0000000000c3", "key": "BUG-3", "project_id": str(PROJECT)}


def unblocked(*, actor: uuid.UUID | None = ACTOR, **data: Any) -> EventFacts:
    return facts("ticket.unblocked", actor, ticket_data(blocker=BLOCKER, key="BUG-7") | data)


def test_an_unblocked_ticket_tells_its_assignee_only() -> None:
    assert plan_notifications(unblocked()) == [
        NotificationDraft(
            user_id=ASSIGNEE,
            type="ticket.unblocked",
            summary="BUG-7 is unblocked: Crash on save (BUG-3 was finished)",
            project_id=PROJECT,
            ticket_id=TICKET,
            ticket_key="BUG-7",
            title="Crash on save",
        )
    ]


def test_an_unblocked_ticket_tells_nobody_when_unassigned_or_the_assignee_acted() -> None:
    assert plan_notifications(unblocked(assignee_id=None)) == []
    assert plan_notifications(unblocked(actor=ASSIGNEE)) == []


def test_an_unblocked_ticket_without_its_actor_still_tells_the_assignee() -> None:
    assert recipients(plan_notifications(unblocked(actor=None))) == [(ASSIGNEE, "ticket.unblocked")]


@pytest.mark.parametrize("blocker", [None, {"id": "nope", "key": "BUG-3"}, {"key": "BUG-3"}])
def test_an_unblocked_event_without_a_valid_blocker_is_malformed(blocker: object) -> None:
    data = ticket_data(blocker=blocker) if blocker is not None else ticket_data()
    with pytest.raises(MalformedEventError):
        plan_notifications(facts("ticket.unblocked", ACTOR, data))


def ticket_event(name: str, *, actor: uuid.UUID | None = ACTOR, **data: Any) -> EventFacts:
    return facts(name, actor, ticket_data(**data))


def status_changed(**data: Any) -> EventFacts:
    changes = {"status": {"from": "open", "to": "in_progress"}}
    return ticket_event("ticket.status_changed", changes=changes, **data)


def commented(
    *, author: uuid.UUID = ACTOR, mentions: list[uuid.UUID] | None = None, **data: Any
) -> EventFacts:
    comment = {
        "id": str(uuid.uuid4()),
        "author_id": str(author),
        "body": "Looks like a race",
        "mentions": [str(m) for m in mentions or []],
    }
    return ticket_event("ticket.commented", actor=author, comment=comment, **data)


def recipients(drafts: list[NotificationDraft]) -> list[tuple[uuid.UUID, str]]:
    return [(draft.user_id, draft.type) for draft in drafts]


def test_a_status_change_tells_reporter_assignee_and_watchers_once_each() -> None:
    drafts = plan_notifications(status_changed())
    assert recipients(drafts) == [
        (REPORTER, "ticket.status_changed"),
        (ASSIGNEE, "ticket.status_changed"),
        (WATCHER, "ticket.status_changed"),
    ]
    assert drafts[0].summary == "BUG-1 moved from open to in_progress: Crash on save"
    assert (drafts[0].ticket_id, drafts[0].project_id, drafts[0].ticket_key) == (
        TICKET,
        PROJECT,
        "BUG-1",
    )


def test_a_status_change_never_tells_the_actor() -> None:
    drafts = plan_notifications(status_changed(watchers=[str(ACTOR)], reporter_id=str(ACTOR)))
    assert recipients(drafts) == [(ASSIGNEE, "ticket.status_changed")]


def test_missing_watchers_are_no_watchers() -> None:
    changes = {"status": {"from": "open", "to": "in_progress"}}
    data = {k: v for k, v in ticket_data(assignee_id=None).items() if k != "watchers"}
    drafts = plan_notifications(facts("ticket.status_changed", ACTOR, data | {"changes": changes}))
    assert recipients(drafts) == [(REPORTER, "ticket.status_changed")]


def test_a_comment_tells_the_audience_and_mentions_come_first() -> None:
    drafts = plan_notifications(commented(mentions=[WATCHER, BOB]))
    assert recipients(drafts) == [
        (WATCHER, "ticket.mentioned"),
        (BOB, "ticket.mentioned"),
        (REPORTER, "ticket.commented"),
        (ASSIGNEE, "ticket.commented"),
    ]
    assert drafts[0].summary == "You were mentioned on BUG-1: Crash on save"
    assert drafts[2].summary == "New comment on BUG-1: Crash on save"


def test_the_comment_author_is_never_told_even_without_an_actor() -> None:
    event = commented(author=REPORTER, mentions=[REPORTER])
    anonymous = EventFacts(event.id, event.name, None, event.data)
    assert recipients(plan_notifications(anonymous)) == [
        (ASSIGNEE, "ticket.commented"),
        (WATCHER, "ticket.commented"),
    ]


def test_a_comment_event_without_a_comment_is_malformed() -> None:
    with pytest.raises(MalformedEventError):
        plan_notifications(ticket_event("ticket.commented"))


def test_the_added_member_is_told() -> None:
    data = {"project_id": str(PROJECT), "project_key": "BUG", "user_id": str(ANN)}
    event = facts("project.member_added", ACTOR, data | {"role": "developer"})
    assert plan_notifications(event) == [
        NotificationDraft(
            user_id=ANN,
            type="project.member_added",
            summary="You were added to BUG as developer",
            project_id=PROJECT,
        )
    ]
    self_added = EventFacts(event.id, event.name, ANN, event.data)
    assert plan_notifications(self_added) == []


def test_the_maintainers_are_told_that_a_webhook_was_turned_off() -> None:
    lead, owner = uuid.uuid4(), uuid.uuid4()
    webhook = {
        "id": str(uuid.uuid4()),
        "project_id": str(PROJECT),
        "url": "https://ci.example.com/hook",
        "events": ["ticket.*"],
        "description": "",
        "active": False,
        "disabled_at": "2026-11-30T12:00:00Z",
        "version": 3,
        "created_at": "2026-11-25T12:00:00Z",
        "updated_at": "2026-11-30T12:00:00Z",
        "deleted": False,
        "maintainer_ids": [str(lead), str(owner)],
    }
    drafts = plan_notifications(facts("webhook.disabled", None, webhook))
    assert [(d.user_id, d.type, d.project_id, d.ticket_id) for d in drafts] == [
        (lead, "webhook.disabled", PROJECT, None),
        (owner, "webhook.disabled", PROJECT, None),
    ]
    assert "https://ci.example.com/hook" in drafts[0].summary


def test_a_summary_is_bounded_whatever_the_event_holds() -> None:
    """The live feed sends each notification whole in one NOTIFY (8000 bytes at most)."""
    huge = "\x01" * 5000
    moved = ticket_event("ticket.status_changed", changes={"status": {"from": huge, "to": huge}})
    data = {"project_id": str(PROJECT), "project_key": huge, "user_id": str(ANN), "role": huge}
    added = facts("project.member_added", ACTOR, data)
    unblocked_by_huge = unblocked(key=huge, blocker=BLOCKER | {"key": huge})
    bulk = bulk_assigned(ANN, key=huge, size=10**100)
    for event in (moved, added, unblocked_by_huge, bulk):
        summaries = [draft.summary for draft in plan_notifications(event)]
        assert summaries
        assert all(len(summary) == SUMMARY_MAX_CHARS for summary in summaries)
        assert all(summary.endswith("…") for summary in summaries)


@pytest.mark.parametrize("watchers", ["nope", ["not-a-uuid"]])
def test_malformed_watchers_are_an_error(watchers: object) -> None:
    with pytest.raises(MalformedEventError):
        plan_notifications(status_changed(watchers=watchers))


def test_an_event_without_a_rule_has_no_facts() -> None:
    with pytest.raises(MalformedEventError):
        facts("ticket.created", ACTOR, ticket_data())


def test_a_rule_refuses_the_data_of_another_event() -> None:
    event = assigned(ANN)
    created = TicketCreated.model_validate(ticket_data())
    with pytest.raises(MalformedEventError):
        plan_notifications(EventFacts(event.id, event.name, event.actor_id, created))
