"""The project activity feed (docs/adr/0046): each event the real use cases write becomes
at most one entry (`activity_of`, pure), and the feed is read newest first, paginated,
for members only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_shared.event_schemas import (
    MilestoneCreated,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
)
from bugtracker_shared.events import CloudEvent, new_event, raw_event
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_tickets.application.activity import ActivityUseCases, Position
from bugtracker_tickets.application.use_cases import NewTicket
from bugtracker_tickets.domain.activity import (
    ACTIVITY_EVENTS,
    SUMMARY_CHARS,
    ActivityEntry,
    activity_of,
)
from bugtracker_tickets.domain.errors import ProjectNotFoundError
from bugtracker_tickets.domain.tickets import Priority, Ticket, TicketPatch
from bugtracker_tickets.domain.workflow import Resolution

from services.tickets.tests.unit.fakes import Team, TicketsWorld

SYSTEM = uuid.UUID(int=0)


def last_entry(world: TicketsWorld) -> ActivityEntry | None:
    return activity_of(world.database.events[-1])


async def create(world: TicketsWorld, team: Team, title: str = "Login fails") -> Ticket:
    created = await world.tickets.create_ticket(team.developer, "BUG", NewTicket(title=title))
    return created.ticket


def member_event(
    name: str, project_id: uuid.UUID, user_id: uuid.UUID, actor: uuid.UUID | None, **extra: object
) -> CloudEvent:
    model = {
        "project.member_added": ProjectMemberAdded,
        "project.member_role_changed": ProjectMemberRoleChanged,
        "project.member_removed": ProjectMemberRemoved,
    }[name]
    data = model(project_id=project_id, project_key="BUG", user_id=user_id, **extra)
    return new_event(
        name,
        service="projects",
        subject=project_id,
        sequence=3,
        data=data,
        actor_id=actor,
        correlation_id=None,
    )


# -- ticket events, as the use cases write them --------------------------------------------


async def test_a_created_ticket(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    event = world.database.events[-1]

    entry = activity_of(event)

    assert entry == ActivityEntry(
        event_id=event.id,
        project_id=team.project.id,
        at=event.time,
        actor_id=team.developer.user_id,
        kind="ticket.created",
        summary="created bug “Login fails”",
        ticket_id=ticket.id,
        ticket_key="BUG-1",
    )


async def test_a_field_change_names_each_field_but_quotes_no_description(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team)
    patch = TicketPatch(priority=Priority.HIGH, description="a long text", labels=("ui", "db"))
    await world.tickets.update_ticket(team.developer, ticket.key, patch, expected_version=None)

    entry = last_entry(world)

    assert entry is not None
    assert entry.kind == "ticket.updated"
    assert entry.ticket_key == "BUG-1"
    parts = set(entry.summary.split("; "))
    assert parts == {
        "changed priority from medium to high",
        "changed the description",
        "changed labels from none to ui, db",
    }


async def test_assigned_and_unassigned(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    await world.tickets.assign(team.developer, ticket.key, team.reporter.user_id)
    assigned = last_entry(world)
    await world.tickets.assign(team.developer, ticket.key, None)
    unassigned = last_entry(world)

    assert assigned is not None
    assert (assigned.kind, assigned.summary) == (
        "ticket.assigned",
        f"assigned to {team.reporter.user_id}",
    )
    assert unassigned is not None
    assert (unassigned.kind, unassigned.summary) == ("ticket.assigned", "unassigned")


async def test_a_transition_and_its_comment(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    await world.tickets.transition(team.developer, ticket.key, "in_progress", None)
    moved = last_entry(world)
    await world.tickets.transition(
        team.developer, ticket.key, "done", Resolution.FIXED, comment="shipped"
    )
    done, commented = (activity_of(e) for e in world.database.events[-2:])

    assert moved is not None
    assert (moved.kind, moved.summary) == ("ticket.transitioned", "moved from open to in_progress")
    assert done is not None
    assert (done.kind, done.summary) == (
        "ticket.transitioned",
        "moved from in_progress to done (resolution: fixed)",
    )
    assert commented is not None
    assert (commented.kind, commented.summary) == ("ticket.commented", "commented")


async def test_a_comment(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    await world.comments.add_comment(team.viewer, ticket.key, "same here")

    entry = last_entry(world)

    assert entry is not None
    assert (entry.kind, entry.summary, entry.actor_id) == (
        "ticket.commented",
        "commented",
        team.viewer.user_id,
    )


async def test_a_delete_and_a_restore(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    await world.tickets.delete_ticket(team.maintainer, ticket.key)
    deleted = last_entry(world)
    await world.tickets.restore_ticket(team.maintainer, ticket.key)
    restored = last_entry(world)

    assert deleted is not None
    assert (deleted.kind, deleted.summary) == ("ticket.deleted", "deleted the ticket")
    assert restored is not None
    assert (restored.kind, restored.summary) == ("ticket.restored", "restored the ticket")


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_attachments_added_and_removed(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    attachment = await world.attachments.upload(
        team.developer, ticket.key, "trace.txt", chunks(b"Traceback (most recent call last)\n")
    )
    added = last_entry(world)
    await world.attachments.delete_attachment(team.developer, attachment.id)
    removed = last_entry(world)

    assert added is not None
    assert (added.kind, added.summary) == ("attachment.added", "attached “trace.txt”")
    assert removed is not None
    assert (removed.kind, removed.summary) == (
        "attachment.removed",
        "removed the attachment “trace.txt”",
    )


async def test_a_system_change_has_no_actor(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team)
    await world.tickets.assign(team.developer, ticket.key, team.reporter.user_id)
    event = world.database.events[-1].model_copy(update={"actorid": str(SYSTEM)})

    entry = activity_of(event)

    assert entry is not None
    assert entry.actor_id is None


async def test_a_summary_is_short_whatever_the_values(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team, title="x" * 200)
    await world.tickets.update_ticket(
        team.developer,
        ticket.key,
        TicketPatch(title="y" * 200, labels=tuple(f"label{n}" for n in range(20))),
        expected_version=None,
    )

    created = activity_of(world.database.events[-2])
    updated = last_entry(world)

    assert created is not None
    assert updated is not None
    assert len(created.summary) < 100
    assert len(updated.summary) <= SUMMARY_CHARS
    assert "…" in updated.summary


# -- member events, as the projects service publishes them -----------------------------------


def test_member_added_role_changed_and_removed() -> None:
    project, user, owner = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    role_change = {"role": {"from": "developer", "to": "maintainer"}}
    events = [
        member_event("project.member_added", project, user, owner, role="developer"),
        member_event(
            "project.member_role_changed",
            project,
            user,
            owner,
            role="maintainer",
            changes=role_change,
        ),
        member_event("project.member_removed", project, user, owner, role="maintainer"),
        member_event("project.member_removed", project, user, user, role="maintainer"),
    ]

    entries = [activity_of(event) for event in events]

    assert [(e.kind, e.summary) if e else None for e in entries] == [
        ("member.added", f"added {user} as developer"),
        ("member.role_changed", f"changed the role of {user} from developer to maintainer"),
        ("member.removed", f"removed {user}"),
        ("member.removed", "left the project"),
    ]
    assert all(e is not None and e.project_id == project for e in entries)
    assert all(e is not None and e.ticket_key is None and e.ticket_id is None for e in entries)


# -- what makes no entry -----------------------------------------------------------------------


def test_other_events_make_no_entry() -> None:
    project = uuid.uuid4()
    milestone = MilestoneCreated(
        id=uuid.uuid4(),
        project_id=project,
        name="1.0",
        description="",
        due_date=None,
        state="open",
        progress={"total": 0, "done": 0},
        version=1,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        deleted=False,
    )
    events = [
        new_event(
            "milestone.created",
            service="tickets",
            subject=milestone.id,
            sequence=1,
            data=milestone,
            actor_id=None,
            correlation_id=None,
        ),
        raw_event(
            "project.archived",
            service="projects",
            subject=project,
            sequence=2,
            data={"id": str(project)},
            actor_id=None,
            correlation_id=None,
        ),
    ]

    assert [activity_of(event) for event in events] == [None, None]
    assert "milestone.created" not in ACTIVITY_EVENTS
    assert "ticket.related" not in ACTIVITY_EVENTS


async def test_relations_make_no_entry(world: TicketsWorld, team: Team) -> None:
    await create(world, team)
    event = world.database.events[-1]
    related = event.model_copy(update={"type": "io.bugtracker.ticket.related.v1"})

    assert activity_of(related) is None


# -- the feed --------------------------------------------------------------------------------


class FakeActivityLog:
    """The feed's store in memory: one entry per event, newest first."""

    def __init__(self) -> None:
        self.entries: dict[uuid.UUID, ActivityEntry] = {}
        self.hidden: set[uuid.UUID] = set()  # tickets deleted now

    async def add(self, entry: ActivityEntry) -> bool:
        if entry.event_id in self.entries:
            return False
        stored = ActivityEntry(**{**entry.__dict__, "id": len(self.entries) + 1})
        self.entries[entry.event_id] = stored
        return True

    async def page(
        self, project_id: uuid.UUID, *, after: Position | None, limit: int
    ) -> list[ActivityEntry]:
        rows = sorted(
            (
                e
                for e in self.entries.values()
                if e.project_id == project_id and e.ticket_id not in self.hidden
            ),
            key=lambda e: (e.at, e.id or 0),
            reverse=True,
        )
        if after is not None:
            rows = [e for e in rows if (e.at, e.id or 0) < after]
        return rows[:limit]

    async def purge_deleted_projects(self, deleted_before: datetime) -> int:
        return 0


@pytest.fixture
def feed(world: TicketsWorld) -> tuple[ActivityUseCases, FakeActivityLog]:
    log = FakeActivityLog()
    return ActivityUseCases(log=log, tickets=world.tickets), log


async def test_a_redelivered_event_makes_one_entry(
    world: TicketsWorld, team: Team, feed: tuple[ActivityUseCases, FakeActivityLog]
) -> None:
    cases, log = feed
    await create(world, team)
    event = world.database.events[-1]

    await cases.handle_event(event)
    await cases.handle_event(event)

    assert len(log.entries) == 1


async def test_members_page_through_the_feed_newest_first(
    world: TicketsWorld, team: Team, feed: tuple[ActivityUseCases, FakeActivityLog]
) -> None:
    cases, _ = feed
    for n in range(5):
        await create(world, team, title=f"Bug {n}")
    start = datetime.now(UTC)
    for n, event in enumerate(world.database.events):
        await cases.handle_event(event.model_copy(update={"time": start + timedelta(seconds=n)}))

    seen: list[str | None] = []
    cursor = None
    while True:
        page = await cases.project_activity(team.viewer, "BUG", limit=2, cursor=cursor)
        seen += [e.ticket_key for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == [f"BUG-{n}" for n in range(5, 0, -1)]


async def test_outsiders_get_404(
    world: TicketsWorld, team: Team, feed: tuple[ActivityUseCases, FakeActivityLog]
) -> None:
    cases, _ = feed
    with pytest.raises(ProjectNotFoundError):
        await cases.project_activity(team.outsider, "BUG", limit=20, cursor=None)
    admin = world.user(admin=True)
    page = await cases.project_activity(admin, "BUG", limit=20, cursor=None)
    assert page.items == []


async def test_a_malformed_cursor_is_refused(
    team: Team, feed: tuple[ActivityUseCases, FakeActivityLog]
) -> None:
    cases, _ = feed
    with pytest.raises(InvalidCursorError):
        await cases.project_activity(team.viewer, "BUG", limit=20, cursor="bm90IGEgY3Vyc29y")
