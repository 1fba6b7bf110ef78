"""The tickets application layer through in-memory fakes of its ports (fakes.py): the
real use cases and domain rules, no database, no broker, no HTTP."""

from __future__ import annotations

import uuid

import pytest
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.application import use_cases
from bugtracker_tickets.application.use_cases import Idempotency, NewTicket
from bugtracker_tickets.domain.errors import (
    AssigneeNotMemberError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    ProjectArchivedError,
    ProjectNotFoundError,
    ResolutionRequiredError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.tickets import Priority, Ticket, TicketPatch
from bugtracker_tickets.domain.workflow import Resolution

from services.tickets.tests.unit.fakes import FakeOutbox, Team, TicketsWorld


async def create(
    world: TicketsWorld, who: Principal, title: str = "Login fails", **fields: object
) -> Ticket:
    created = await world.tickets.create_ticket(who, "BUG", NewTicket(title=title, **fields))
    return created.ticket


# -- create ------------------------------------------------------------------------------


async def test_create_numbers_tickets_per_project_without_gaps(
    world: TicketsWorld, team: Team
) -> None:
    other = world.project("OPS", owner=(team.reporter, team.project.members[team.reporter.user_id]))
    first = await create(world, team.reporter)
    second = await create(world, team.developer)
    elsewhere = (await world.tickets.create_ticket(team.reporter, "ops", NewTicket("x"))).ticket
    assert [(first.number, first.key), (second.number, second.key)] == [(1, "BUG-1"), (2, "BUG-2")]
    assert (elsewhere.key, elsewhere.project_id) == ("OPS-1", other.id)
    stored = world.database.ticket(second.id)
    assert (stored.key, stored.status, stored.reporter_id) == (
        "BUG-2",
        "open",
        team.developer.user_id,
    )
    assert world.database.commits == 3


async def test_create_makes_the_reporter_and_the_assignee_watchers_and_emits_both_events(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.developer, assignee_id=team.viewer.user_id)
    assert world.database.watchers_of(ticket.id) == {team.developer.user_id, team.viewer.user_id}
    assert world.database.event_names() == ["ticket.created", "ticket.assigned"]
    created, assigned = world.database.events
    assert created.data["key"] == assigned.data["key"] == "BUG-1"
    assert created.subject == str(ticket.id)
    assert created.actorid == str(team.developer.user_id)
    assert sorted(created.data["watchers"]) == sorted(
        str(u) for u in (team.developer.user_id, team.viewer.user_id)
    )
    assert assigned.data["changes"] == {
        "assignee_id": {"from": None, "to": str(team.viewer.user_id)}
    }


async def test_create_without_assignee_emits_only_created(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    assert world.database.event_names() == ["ticket.created"]
    assert world.database.watchers_of(ticket.id) == {team.reporter.user_id}
    assert ticket.assignee_id is None


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("viewer", ForbiddenError),
        ("outsider", ProjectNotFoundError),
    ],
)
async def test_who_may_not_create_writes_nothing(
    world: TicketsWorld, team: Team, who: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await create(world, getattr(team, who))
    assert world.database.state.tickets == {}
    assert world.database.events == []


async def test_an_assignee_outside_the_project_is_refused(world: TicketsWorld, team: Team) -> None:
    with pytest.raises(AssigneeNotMemberError):
        await create(world, team.developer, assignee_id=team.outsider.user_id)
    assert world.database.commits == 0
    # No number was used up.
    assert (await create(world, team.developer)).key == "BUG-1"


async def test_an_archived_project_is_read_only(world: TicketsWorld, team: Team) -> None:
    team.project.archived = True
    with pytest.raises(ProjectArchivedError):
        await create(world, team.owner)
    assert world.database.commits == 0


# -- update --------------------------------------------------------------------------------


async def test_update_writes_history_per_field_bumps_the_version_and_emits_updated(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    edit = TicketPatch(title="Login fails on Safari", priority=Priority.HIGH, labels=())
    updated = await world.tickets.update_ticket(
        team.developer, ticket.key, edit, expected_version=1
    )
    assert updated.version == 2
    stored = world.database.ticket(ticket.id)
    assert (stored.title, stored.priority, stored.version) == (
        "Login fails on Safari",
        Priority.HIGH,
        2,
    )
    history = world.database.history_of(ticket.id)
    assert [(h.field, h.from_value, h.to_value, h.actor_id) for h in history] == [
        ("title", "Login fails", "Login fails on Safari", team.developer.user_id),
        ("priority", "medium", "high", team.developer.user_id),
    ]
    event = world.database.events[-1]
    assert event.name == "ticket.updated"
    assert event.sequence == 2
    assert set(event.data["changes"]) == {"title", "priority"}


async def test_an_update_that_changes_nothing_commits_nothing(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    commits = world.database.commits
    same = await world.tickets.update_ticket(
        team.developer, ticket.key, TicketPatch(title=ticket.title), expected_version=None
    )
    assert same.version == 1
    assert world.database.commits == commits
    assert world.database.event_names() == ["ticket.created"]


async def test_a_stale_expected_version_is_refused_and_changes_nothing(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    await world.tickets.update_ticket(
        team.developer, ticket.key, TicketPatch(title="v2"), expected_version=1
    )
    with pytest.raises(PreconditionFailedError):
        await world.tickets.update_ticket(
            team.developer, ticket.key, TicketPatch(title="v3"), expected_version=1
        )
    assert world.database.ticket(ticket.id).title == "v2"
    assert len(world.database.history_of(ticket.id)) == 1


async def test_a_reporter_edits_their_own_tickets_only(world: TicketsWorld, team: Team) -> None:
    own = await create(world, team.reporter)
    others = await create(world, team.developer)
    await world.tickets.update_ticket(
        team.reporter, own.key, TicketPatch(title="mine"), expected_version=None
    )
    with pytest.raises(ForbiddenError):
        await world.tickets.update_ticket(
            team.reporter, others.key, TicketPatch(title="theirs"), expected_version=None
        )
    assert world.database.ticket(own.id).title == "mine"
    assert world.database.ticket(others.id).title == "Login fails"


# -- assign --------------------------------------------------------------------------------


async def test_assign_adds_a_watcher_history_and_an_event(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    assigned = await world.tickets.assign(team.developer, ticket.key, team.viewer.user_id)
    assert assigned.assignee_id == team.viewer.user_id
    assert world.database.ticket(ticket.id).assignee_id == team.viewer.user_id
    assert team.viewer.user_id in world.database.watchers_of(ticket.id)
    (entry,) = world.database.history_of(ticket.id)
    assert (entry.field, entry.from_value, entry.to_value) == (
        "assignee_id",
        None,
        str(team.viewer.user_id),
    )
    event = world.database.events[-1]
    assert event.name == "ticket.assigned"
    assert str(team.viewer.user_id) in event.data["watchers"]


async def test_assigning_a_non_member_is_refused(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(AssigneeNotMemberError):
        await world.tickets.assign(team.developer, ticket.key, team.outsider.user_id)
    assert world.database.ticket(ticket.id).assignee_id is None
    assert team.outsider.user_id not in world.database.watchers_of(ticket.id)


async def test_a_reporter_may_not_assign(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(ForbiddenError):
        await world.tickets.assign(team.reporter, ticket.key, team.reporter.user_id)


async def test_assigning_the_same_person_again_changes_nothing(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter, assignee_id=team.developer.user_id)
    commits = world.database.commits
    again = await world.tickets.assign(team.developer, ticket.key, team.developer.user_id)
    assert again.version == 1
    assert world.database.commits == commits


# -- transitions ---------------------------------------------------------------------------


async def move(
    world: TicketsWorld,
    who: Principal,
    ticket: Ticket,
    to: str,
    resolution: Resolution | None = None,
    **kwargs: object,
) -> Ticket:
    return await world.tickets.transition(who, ticket.key, to, resolution, **kwargs)


async def test_a_developer_walks_the_workflow(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    await move(world, team.developer, ticket, "in_progress")
    await move(world, team.developer, ticket, "in_review")
    done = await move(world, team.developer, ticket, "done")
    assert (done.status, done.resolution, done.version) == ("done", "fixed", 4)
    reopened = await move(world, team.developer, ticket, "open")
    assert (reopened.status, reopened.resolution) == ("open", None)
    history = [(h.field, h.to_value) for h in world.database.history_of(ticket.id)]
    assert history == [
        ("status", "in_progress"),
        ("status", "in_review"),
        ("status", "done"),
        ("resolution", "fixed"),
        ("status", "open"),
        ("resolution", None),
    ]
    assert world.database.event_names().count("ticket.status_changed") == 4


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ((), "done"),
        ((), "in_review"),
        (("in_progress", "in_review"), "open"),
        (("in_progress", "done"), "in_progress"),
    ],
)
async def test_transitions_outside_the_workflow_are_refused(
    world: TicketsWorld, team: Team, path: tuple[str, ...], to: str
) -> None:
    ticket = await create(world, team.reporter)
    for step in path:
        await move(world, team.developer, ticket, step)
    before = world.database.ticket(ticket.id)
    with pytest.raises(InvalidTransitionError) as raised:
        await move(world, team.developer, ticket, to, Resolution.FIXED)
    assert to not in raised.value.extra["allowed"]
    assert world.database.ticket(ticket.id) == before


async def test_closing_needs_a_resolution(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(ResolutionRequiredError):
        await move(world, team.developer, ticket, "closed")
    assert world.database.ticket(ticket.id).status == "open"
    closed = await move(world, team.developer, ticket, "closed", Resolution.DUPLICATE)
    assert (closed.status, closed.resolution) == ("closed", "duplicate")


async def test_a_reporter_closes_and_reopens_their_own_tickets_only(
    world: TicketsWorld, team: Team
) -> None:
    own = await create(world, team.reporter)
    with pytest.raises(ForbiddenError):
        await move(world, team.reporter, own, "in_progress")
    await move(world, team.reporter, own, "closed", Resolution.WONT_FIX)
    assert (await move(world, team.reporter, own, "open")).status == "open"
    others = await create(world, team.developer)
    with pytest.raises(ForbiddenError):
        await move(world, team.reporter, others, "closed", Resolution.INVALID)
    assert world.database.ticket(others.id).status == "open"


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("developer", {"in_progress", "closed"}),
        ("reporter", {"closed"}),
        ("viewer", set()),
    ],
)
async def test_available_transitions_depend_on_the_role(
    world: TicketsWorld, team: Team, who: str, expected: set[str]
) -> None:
    ticket = await create(world, team.reporter)
    found = await world.tickets.transitions(getattr(team, who), ticket.key)
    assert {t.to for t in found} == expected
    assert all(t.requires_resolution == (t.to == "closed") for t in found)


async def test_a_viewer_may_not_move_a_ticket(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(ForbiddenError):
        await move(world, team.viewer, ticket, "in_progress")


async def test_a_transition_with_a_comment_records_both(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    await move(
        world, team.developer, ticket, "closed", Resolution.INVALID, comment="@viewer see docs"
    )
    (comment,) = world.database.state.comments.values()
    assert (comment.body, comment.mentions) == ("@viewer see docs", [team.viewer.user_id])
    assert world.database.event_names()[-2:] == ["ticket.status_changed", "ticket.commented"]
    assert team.developer.user_id in world.database.watchers_of(ticket.id)


async def test_a_failed_use_case_commits_nothing(
    world: TicketsWorld, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox fails after the ticket, its history and its comment were written: the
    transaction is rolled back as a whole."""
    ticket = await create(world, team.reporter)
    before = world.database.snapshot()
    commits = world.database.commits

    async def broken(self: FakeOutbox, event: object) -> None:
        raise ConnectionError("outbox unavailable")

    monkeypatch.setattr(FakeOutbox, "add", broken)
    with pytest.raises(ConnectionError):
        await move(world, team.developer, ticket, "in_progress", comment="starting")
    assert world.database.state == before
    assert world.database.commits == commits
    assert world.database.rollbacks >= 1


# -- comments ------------------------------------------------------------------------------


async def test_comments_mention_members_only_and_make_the_author_a_watcher(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    body = f"@developer @Maintainer @{str(team.outsider.user_id)[:8]}@example.com and @nobody"
    created = await world.comments.add_comment(team.viewer, ticket.key, body)
    assert created.comment.mentions == [team.developer.user_id, team.maintainer.user_id]
    assert team.viewer.user_id in world.database.watchers_of(ticket.id)
    event = world.database.events[-1]
    assert event.name == "ticket.commented"
    assert event.data["comment"]["mentions"] == [
        str(team.developer.user_id),
        str(team.maintainer.user_id),
    ]
    listed = await world.comments.list_comments(team.viewer, ticket.key, limit=10, cursor=None)
    assert [c.id for c in listed.items] == [created.comment.id]


async def test_only_the_author_edits_and_a_maintainer_may_delete(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    comment = (await world.comments.add_comment(team.viewer, ticket.key, "first")).comment
    with pytest.raises(ForbiddenError):
        await world.comments.edit_comment(
            team.developer, ticket.key, comment.id, "hijack", expected_version=None
        )
    with pytest.raises(PreconditionFailedError):
        await world.comments.edit_comment(
            team.viewer, ticket.key, comment.id, "stale", expected_version=2
        )
    edited = await world.comments.edit_comment(
        team.viewer, ticket.key, comment.id, "second", expected_version=1
    )
    assert (edited.body, edited.version) == ("second", 2)
    with pytest.raises(ForbiddenError):
        await world.comments.delete_comment(team.developer, ticket.key, comment.id)
    await world.comments.delete_comment(team.maintainer, ticket.key, comment.id)
    assert world.database.state.comments[comment.id].deleted_at is not None
    listed = await world.comments.list_comments(team.viewer, ticket.key, limit=10, cursor=None)
    assert listed.items == []


# -- delete and restore --------------------------------------------------------------------


async def test_delete_hides_the_ticket_and_restore_brings_it_back(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(ForbiddenError):
        await world.tickets.delete_ticket(team.developer, ticket.key)
    await world.tickets.delete_ticket(team.maintainer, ticket.key)
    with pytest.raises(TicketNotFoundError):
        await world.tickets.get_ticket(team.owner, ticket.key)
    with pytest.raises(ForbiddenError):
        await world.tickets.restore_ticket(team.developer, ticket.key)
    restored = await world.tickets.restore_ticket(team.maintainer, ticket.key)
    assert restored.deleted_at is None
    assert (await world.tickets.get_ticket(team.viewer, ticket.key)).version == 3
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(ticket.id)] == [
        ("deleted", False, True),
        ("deleted", True, False),
    ]
    assert world.database.event_names() == ["ticket.created", "ticket.deleted", "ticket.updated"]


async def test_outsiders_cannot_see_tickets(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(TicketNotFoundError):
        await world.tickets.get_ticket(team.outsider, ticket.key)
    with pytest.raises(TicketNotFoundError):
        await world.tickets.restore_ticket(team.outsider, ticket.key)


# -- idempotency ---------------------------------------------------------------------------


async def test_the_same_key_and_body_replay_the_first_ticket(
    world: TicketsWorld, team: Team
) -> None:
    body = {"title": "Login fails"}
    first = await world.tickets.create_ticket(
        team.reporter, "BUG", NewTicket("Login fails"), Idempotency.of("k1", body)
    )
    again = await world.tickets.create_ticket(
        team.reporter, "BUG", NewTicket("Login fails"), Idempotency.of("k1", body)
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.ticket.id == first.ticket.id
    assert len(world.database.state.tickets) == 1
    assert world.database.event_names() == ["ticket.created"]


async def test_the_same_key_with_another_body_is_refused(world: TicketsWorld, team: Team) -> None:
    await world.tickets.create_ticket(
        team.reporter, "BUG", NewTicket("a"), Idempotency.of("k1", {"title": "a"})
    )
    with pytest.raises(IdempotencyKeyReusedError):
        await world.tickets.create_ticket(
            team.reporter, "BUG", NewTicket("b"), Idempotency.of("k1", {"title": "b"})
        )
    # Another user's key of the same name is theirs alone.
    other = await world.tickets.create_ticket(
        team.developer, "BUG", NewTicket("b"), Idempotency.of("k1", {"title": "b"})
    )
    assert not other.replayed
    assert [t.title for t in world.database.state.tickets.values()] == ["a", "b"]


async def test_comments_are_idempotent_too(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    key = Idempotency.of("c1", {"body": "hello"})
    first = await world.comments.add_comment(team.viewer, ticket.key, "hello", key)
    again = await world.comments.add_comment(team.viewer, ticket.key, "hello", key)
    assert again.replayed
    assert again.comment.id == first.comment.id
    assert len(world.database.state.comments) == 1
    with pytest.raises(IdempotencyKeyReusedError):
        await world.comments.add_comment(
            team.viewer, ticket.key, "bye", Idempotency.of("c1", {"body": "bye"})
        )


# -- a member leaves -----------------------------------------------------------------------


async def test_member_left_unassigns_with_history_and_events_and_unwatches(
    world: TicketsWorld, team: Team
) -> None:
    leaver = team.developer
    ops = world.project("OPS", dev=(leaver, team.project.members[leaver.user_id]))
    mine = [await create(world, team.reporter, assignee_id=leaver.user_id) for _ in range(2)]
    watched = await create(world, team.reporter)
    await world.comments.watch(leaver, watched.key, watching=True)
    kept = (
        await world.tickets.create_ticket(
            leaver, "OPS", NewTicket("elsewhere", assignee_id=leaver.user_id)
        )
    ).ticket
    events_before = len(world.database.events)

    unassigned = await world.tickets.member_left(
        team.project.id, leaver.user_id, team.owner.user_id
    )

    assert unassigned == 2
    for ticket in mine:
        stored = world.database.ticket(ticket.id)
        assert (stored.assignee_id, stored.version) == (None, 2)
        (entry,) = world.database.history_of(ticket.id)
        assert (entry.field, entry.from_value, entry.to_value, entry.actor_id) == (
            "assignee_id",
            str(leaver.user_id),
            None,
            team.owner.user_id,
        )
        assert leaver.user_id not in world.database.watchers_of(ticket.id)
    assert leaver.user_id not in world.database.watchers_of(watched.id)
    new_events = world.database.events[events_before:]
    assert [e.name for e in new_events] == ["ticket.assigned", "ticket.assigned"]
    assert all(e.data["assignee_id"] is None for e in new_events)
    assert {e.actorid for e in new_events} == {str(team.owner.user_id)}
    # The other project is untouched.
    assert world.database.ticket(kept.id).assignee_id == leaver.user_id
    assert leaver.user_id in world.database.watchers_of(kept.id)
    assert ops.members


async def test_member_left_twice_is_harmless_and_works_in_batches(
    world: TicketsWorld, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(use_cases, "MEMBER_LEFT_BATCH", 2)
    leaver = team.viewer
    for _ in range(3):
        await create(world, team.reporter, assignee_id=leaver.user_id)
    commits = world.database.commits
    assert await world.tickets.member_left(team.project.id, leaver.user_id, None) == 3
    assert world.database.commits == commits + 2  # a batch of two, then one of one
    events = len(world.database.events)
    assert await world.tickets.member_left(team.project.id, leaver.user_id, None) == 0
    assert len(world.database.events) == events
    # No actor named: the service itself acted.
    assert world.database.events[-1].actorid == str(use_cases.SYSTEM_ACTOR)
    assert all(t.assignee_id is None for t in world.database.state.tickets.values())


async def test_history_pages(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.reporter)
    for title in ("a", "b", "c"):
        await world.tickets.update_ticket(
            team.developer, ticket.key, TicketPatch(title=title), expected_version=None
        )
    page, cursor = await world.tickets.history(team.viewer, ticket.key, limit=2, cursor=None)
    assert [h.to_value for h in page] == ["a", "b"]
    rest, end = await world.tickets.history(team.viewer, ticket.key, limit=2, cursor=cursor)
    assert ([h.to_value for h in rest], end) == (["c"], None)


async def test_unknown_ticket_refs_are_not_found(world: TicketsWorld, team: Team) -> None:
    for ref in ("BUG-99", str(uuid.uuid4()), "not a ref"):
        with pytest.raises(TicketNotFoundError):
            await world.tickets.get_ticket(team.owner, ref)
