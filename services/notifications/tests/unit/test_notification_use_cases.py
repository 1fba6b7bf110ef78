"""The notifications application layer through in-memory fakes of its ports (fakes.py):
the real use cases and rules, events delivered as the consumer hands them over; no
database, no broker, no HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from bugtracker_notifications.domain.errors import MalformedEventError, NotificationNotFoundError
from bugtracker_shared.events import CloudEvent, raw_event
from bugtracker_shared.pagination import InvalidCursorError

from services.notifications.tests.unit.fakes import NotificationsWorld

ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
ANN = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
BOB = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
CAROL = uuid.UUID("00000000-0000-0000-0000-0000000000b3")
PROJECT = uuid.UUID("00000000-0000-0000-0000-0000000000d1")
OTHER_PROJECT = uuid.UUID("00000000-0000-0000-0000-0000000000d2")


def ticket_event(
    name: str,
    *,
    sequence: int = 2,
    ticket_id: uuid.UUID | None = None,
    project_id: uuid.UUID = PROJECT,
    actor: uuid.UUID | None = ACTOR,
    **data: Any,
) -> CloudEvent:
    """A ticket event as the tickets service publishes it: reporter BOB, assignee ANN."""
    ticket_id = ticket_id or uuid.uuid4()
    body = {
        "id": str(ticket_id),
        "key": "BUG-7",
        "project_id": str(project_id),
        "title": "Crash on save",
        "type": "bug",
        "priority": "high",
        "status": "open",
        "resolution": None,
        "reporter_id": str(BOB),
        "assignee_id": str(ANN),
        "labels": [],
        "due_date": None,
        "version": sequence,
        "created_at": "2030-01-01T00:00:00+00:00",
        "updated_at": "2030-01-01T00:00:00+00:00",
        "deleted": False,
        "watchers": [],
    } | data
    return raw_event(
        name,
        service="tickets",
        subject=ticket_id,
        sequence=sequence,
        data=body,
        actor_id=actor,
        correlation_id=None,
    )


def assigned(assignee: uuid.UUID = ANN, **fields: Any) -> CloudEvent:
    changes = {"assignee_id": {"from": None, "to": str(assignee)}}
    return ticket_event("ticket.assigned", assignee_id=str(assignee), changes=changes, **fields)


def status_changed(**fields: Any) -> CloudEvent:
    changes = {"status": {"from": "open", "to": "in_progress"}}
    return ticket_event("ticket.status_changed", status="in_progress", changes=changes, **fields)


def membership(
    name: str, user: uuid.UUID, *, sequence: int, project_id: uuid.UUID = PROJECT
) -> CloudEvent:
    return raw_event(
        name,
        service="projects",
        subject=project_id,
        sequence=sequence,
        data={
            "project_id": str(project_id),
            "project_key": "BUG",
            "user_id": str(user),
            "role": "developer",
        },
        actor_id=ACTOR,
        correlation_id=None,
    )


async def deliver(world: NotificationsWorld, *events: CloudEvent) -> None:
    for event in events:
        await world.notifications.handle_event(event)
        world.clock.advance()


# -- events into notifications -----------------------------------------------------------


async def test_an_assignment_notifies_the_assignee_once_committed_then_publishes_it(
    world: NotificationsWorld,
) -> None:
    event = assigned(ANN)
    await world.notifications.handle_event(event)
    (notification,) = world.database.of(ANN)
    assert (notification.type, notification.summary) == (
        "ticket.assigned",
        "You were assigned BUG-7: Crash on save",
    )
    assert (notification.event_id, notification.actor_id) == (event.id, ACTOR)
    assert (notification.project_id, notification.ticket_key) == (PROJECT, "BUG-7")
    assert str(notification.ticket_id) == event.subject
    assert notification.created_at == world.clock.now
    assert not notification.is_read
    assert world.feed.published == [[notification]]
    assert world.database.state.inbox == {event.id: event.type}
    assert world.database.commits == 1


async def test_a_redelivered_event_notifies_nobody_twice(world: NotificationsWorld) -> None:
    event = status_changed(watchers=[str(CAROL)])
    await deliver(world, event)
    before = world.database.snapshot()
    await deliver(world, event, event)
    assert world.database.state == before
    assert [len(batch) for batch in world.feed.published] == [3]  # BOB, ANN, CAROL, once
    assert world.database.commits == 1


async def test_an_event_older_than_one_applied_for_its_subject_is_dropped(
    world: NotificationsWorld,
) -> None:
    ticket_id = uuid.uuid4()
    newer = status_changed(ticket_id=ticket_id, sequence=5)
    older = assigned(CAROL, ticket_id=ticket_id, sequence=4)
    await deliver(world, newer)
    before = world.database.snapshot()
    await deliver(world, older)
    assert world.database.state == before
    assert world.database.of(CAROL) == []
    assert older.id not in world.database.state.inbox  # not claimed: nothing was applied


async def test_events_of_one_change_share_a_sequence_and_are_all_applied(
    world: NotificationsWorld,
) -> None:
    ticket_id = uuid.uuid4()
    await deliver(
        world,
        assigned(ANN, ticket_id=ticket_id, sequence=3),
        status_changed(ticket_id=ticket_id, sequence=3),
    )
    assert [n.type for n in world.database.of(ANN)] == ["ticket.assigned", "ticket.status_changed"]
    assert world.database.state.sequences == {str(ticket_id): 3}


async def test_an_event_without_a_rule_is_ignored_without_a_transaction(
    world: NotificationsWorld,
) -> None:
    await deliver(world, ticket_event("ticket.created"))
    assert world.database.state.notifications == {}
    assert world.database.state.inbox == {}
    assert (world.database.commits, world.database.rollbacks) == (0, 0)
    assert world.feed.published == []


async def test_an_event_of_a_foreign_type_is_ignored(world: NotificationsWorld) -> None:
    foreign = assigned(ANN).model_copy(update={"type": "com.example.something"})
    await world.notifications.handle_event(foreign)
    assert world.database.state.inbox == {}
    assert world.feed.published == []


async def test_a_malformed_event_fails_and_leaves_nothing_behind(world: NotificationsWorld) -> None:
    broken = ticket_event("ticket.assigned", assignee_id="not-a-uuid")
    with pytest.raises(MalformedEventError):
        await world.notifications.handle_event(broken)
    assert world.database.state.inbox == {}  # so a redelivery is handled again
    assert world.database.state.sequences == {}
    assert world.feed.published == []


async def test_an_event_that_tells_nobody_is_still_recorded_as_applied(
    world: NotificationsWorld,
) -> None:
    event = assigned(ACTOR)  # the actor assigned themself
    await deliver(world, event)
    assert world.database.state.notifications == {}
    assert event.id in world.database.state.inbox
    assert world.feed.published == [[]]


async def test_a_comment_tells_mentioned_users_first_and_never_the_author(
    world: NotificationsWorld,
) -> None:
    comment = {
        "id": str(uuid.uuid4()),
        "author_id": str(BOB),
        "body": "hm",
        "mentions": [str(CAROL)],
    }
    await deliver(world, ticket_event("ticket.commented", actor=BOB, comment=comment))
    assert [(n.user_id, n.type) for n in world.feed.published[0]] == [
        (CAROL, "ticket.mentioned"),
        (ANN, "ticket.commented"),
    ]
    assert world.database.of(BOB) == []


# -- bulk changes and unblocked tickets ----------------------------------------------------


def bulk_assigned(
    assignee: uuid.UUID, bulk: uuid.UUID, *, size: int = 5, **fields: Any
) -> CloudEvent:
    return assigned(assignee, bulk={"id": str(bulk), "size": size}, **fields)


async def test_a_bulk_change_notifies_each_assignee_once_with_its_first_event(
    world: NotificationsWorld,
) -> None:
    bulk, other_bulk = uuid.uuid4(), uuid.uuid4()
    first = bulk_assigned(ANN, bulk, key="BUG-3")
    rest = [bulk_assigned(ANN, bulk, key=f"BUG-{n}") for n in range(4, 8)]
    await deliver(world, first, *rest, bulk_assigned(ANN, other_bulk, size=2))
    await deliver(world, bulk_assigned(CAROL, bulk), first)  # another assignee; a redelivery
    grouped = world.database.of(ANN)
    assert [(n.group_key, n.summary) for n in grouped] == [
        (bulk, "You were assigned 5 tickets in a bulk change, e.g. BUG-3: Crash on save"),
        (other_bulk, "You were assigned 2 tickets in a bulk change, e.g. BUG-7: Crash on save"),
    ]
    assert (grouped[0].event_id, str(grouped[0].ticket_id)) == (first.id, first.subject)
    assert [n.group_key for n in world.database.of(CAROL)] == [bulk]
    # Every event is applied (claimed), and only what was inserted reaches the streams.
    assert {e.id for e in [first, *rest]} <= set(world.database.state.inbox)
    assert [len(batch) for batch in world.feed.published] == [1, 0, 0, 0, 0, 1, 1]


async def test_a_bulk_notification_read_is_not_made_again_by_a_late_event_of_the_bulk(
    world: NotificationsWorld,
) -> None:
    bulk = uuid.uuid4()
    await deliver(world, bulk_assigned(ANN, bulk))
    await world.notifications.mark_all_read(ANN)
    await deliver(world, bulk_assigned(ANN, bulk))
    assert await world.notifications.unread_count(ANN) == 0
    assert len(world.database.of(ANN)) == 1


async def test_plain_assignments_still_notify_once_per_event(world: NotificationsWorld) -> None:
    await deliver(world, assigned(ANN), assigned(ANN), bulk_assigned(ANN, uuid.uuid4()))
    assert [n.group_key is None for n in world.database.of(ANN)] == [True, True, False]


async def test_an_unblocked_ticket_notifies_its_assignee(world: NotificationsWorld) -> None:
    blocker = {"id": str(uuid.uuid4()), "key": "BUG-3", "project_id": str(PROJECT)}
    event = ticket_event("ticket.unblocked", blocker=blocker, watchers=[str(CAROL)])
    await deliver(world, event, event)
    (notification,) = world.database.of(ANN)
    assert (notification.type, notification.summary, notification.event_id) == (
        "ticket.unblocked",
        "BUG-7 is unblocked: Crash on save (BUG-3 was finished)",
        event.id,
    )
    assert world.database.of(BOB) == world.database.of(CAROL) == []


# -- who left the project hears nothing more of it ---------------------------------------


async def test_a_removed_member_hears_nothing_more_of_that_project_until_added_again(
    world: NotificationsWorld,
) -> None:
    await deliver(world, membership("project.member_removed", ANN, sequence=3))
    assert world.database.state.notifications == {}  # the removal itself tells nobody
    await deliver(world, status_changed(watchers=[str(CAROL)]))
    assert {n.user_id for n in world.feed.published[-1]} == {BOB, CAROL}
    # Other projects are not affected.
    await deliver(world, assigned(ANN, project_id=OTHER_PROJECT))
    assert [n.project_id for n in world.database.of(ANN)] == [OTHER_PROJECT]
    # Added back: told so, and told again of the project's tickets.
    await deliver(world, membership("project.member_added", ANN, sequence=4))
    await deliver(world, assigned(ANN))
    assert [n.type for n in world.database.of(ANN)] == [
        "ticket.assigned",
        "project.member_added",
        "ticket.assigned",
    ]
    assert world.database.state.former_members == {}


async def test_a_stale_removal_does_not_undo_a_newer_addition(world: NotificationsWorld) -> None:
    await deliver(world, membership("project.member_added", ANN, sequence=5))
    await deliver(world, membership("project.member_removed", ANN, sequence=4))
    assert world.database.state.former_members == {}
    await deliver(world, assigned(ANN))
    assert [n.type for n in world.database.of(ANN)] == ["project.member_added", "ticket.assigned"]


# -- reading ------------------------------------------------------------------------------


async def test_listing_is_newest_first_page_by_page(world: NotificationsWorld) -> None:
    for _ in range(5):
        await deliver(world, assigned(ANN))
    await deliver(world, assigned(BOB))
    expected = [n.id for n in reversed(world.database.of(ANN))]
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await world.notifications.list_notifications(
            ANN, unread_only=False, limit=2, cursor=cursor
        )
        seen += [n.id for n in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_notifications_created_at_one_instant_page_without_loss(
    world: NotificationsWorld,
) -> None:
    for _ in range(3):  # one clock reading for all three: only the id tells them apart
        await world.notifications.handle_event(assigned(ANN))
    first = await world.notifications.list_notifications(
        ANN, unread_only=False, limit=2, cursor=None
    )
    assert first.next_cursor is not None
    rest = await world.notifications.list_notifications(
        ANN, unread_only=False, limit=2, cursor=first.next_cursor
    )
    assert rest.next_cursor is None
    assert {n.id for n in [*first.items, *rest.items]} == {n.id for n in world.database.of(ANN)}


async def test_a_cursor_that_is_not_one_is_refused(world: NotificationsWorld) -> None:
    with pytest.raises(InvalidCursorError):
        await world.notifications.list_notifications(
            ANN, unread_only=False, limit=2, cursor="garbage"
        )


async def test_marking_read_counts_down_and_keeps_the_first_read_time(
    world: NotificationsWorld,
) -> None:
    await deliver(world, assigned(ANN), assigned(ANN))
    older, newer = world.database.of(ANN)
    assert await world.notifications.unread_count(ANN) == 2
    read = await world.notifications.mark_read(ANN, older.id)
    first_read_at = world.clock.now
    assert read.read_at == first_read_at
    world.clock.advance(timedelta(minutes=5))
    again = await world.notifications.mark_read(ANN, older.id)
    assert again.read_at == first_read_at
    assert await world.notifications.unread_count(ANN) == 1
    unread = await world.notifications.list_notifications(
        ANN, unread_only=True, limit=10, cursor=None
    )
    assert [n.id for n in unread.items] == [newer.id]


async def test_nobody_marks_another_users_notification(world: NotificationsWorld) -> None:
    await deliver(world, assigned(ANN))
    (notification,) = world.database.of(ANN)
    before = world.database.snapshot()
    with pytest.raises(NotificationNotFoundError):
        await world.notifications.mark_read(BOB, notification.id)
    with pytest.raises(NotificationNotFoundError):
        await world.notifications.mark_read(ANN, uuid.uuid4())
    assert world.database.state == before


async def test_mark_all_read_touches_only_that_users_notifications(
    world: NotificationsWorld,
) -> None:
    await deliver(world, assigned(ANN), assigned(ANN), assigned(BOB))
    await world.notifications.mark_all_read(ANN)
    assert await world.notifications.unread_count(ANN) == 0
    assert await world.notifications.unread_count(BOB) == 1
    assert {n.read_at for n in world.database.of(ANN)} == {world.clock.now}


async def test_a_subscription_receives_its_users_new_notifications_only(
    world: NotificationsWorld,
) -> None:
    await deliver(world, assigned(ANN))  # before subscribing: not streamed
    stream = world.notifications.subscribe(ANN)
    await deliver(world, assigned(BOB), assigned(ANN))
    stream.close()
    received = [n async for n in stream]
    assert [n.user_id for n in received] == [ANN]
    assert received[0].id == world.database.of(ANN)[-1].id
