"""Milestone use cases through the in-memory fakes (fakes.py, fake_milestones.py).

Progress (`total`, `done`) is the database trigger's: the integration tests check it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.application import milestones as milestones_module
from bugtracker_tickets.application.milestones import (
    SYSTEM,
    MilestonePatch,
    MilestoneUseCases,
    NewMilestone,
)
from bugtracker_tickets.application.use_cases import NewTicket
from bugtracker_tickets.domain.errors import (
    ForbiddenError,
    MilestoneExistsError,
    MilestoneNotFoundError,
    ProjectArchivedError,
    ProjectNotFoundError,
)
from bugtracker_tickets.domain.planning import Milestone, MilestoneState

from services.tickets.tests.unit.fakes import Team, TicketsWorld


@pytest.fixture
def cases(world: TicketsWorld) -> MilestoneUseCases:
    return MilestoneUseCases(uow=world.database.unit_of_work, projects=world.projects)


async def make(
    cases: MilestoneUseCases,
    team: Team,
    name: str = "1.0",
    description: str = "",
    due_date: date | None = None,
) -> Milestone:
    new = NewMilestone(name, description, due_date)
    return await cases.create_milestone(team.maintainer, "BUG", new)


async def planned_tickets(
    world: TicketsWorld, team: Team, milestone: Milestone, n: int
) -> list[uuid.UUID]:
    """`n` tickets of the team's project planned for the milestone (set in the stored
    state, as the ticket-side PATCH is not what is tested here)."""
    ids = []
    for i in range(n):
        created = await world.tickets.create_ticket(team.developer, "BUG", NewTicket(f"t{i}"))
        world.database.state.tickets[created.ticket.id].milestone_id = milestone.id
        ids.append(created.ticket.id)
    return ids


# -- create and read ---------------------------------------------------------------------


async def test_a_maintainer_creates_a_milestone_with_its_event(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team, "1.0", description="First", due_date=date(2027, 1, 1))
    assert milestone.project_id == team.project.id
    assert (milestone.state, milestone.version, milestone.total, milestone.done) == (
        MilestoneState.OPEN,
        1,
        0,
        0,
    )
    assert await cases.get_milestone(team.viewer, milestone.id) == milestone
    [event] = world.database.events
    assert event.name == "milestone.created"
    assert event.subject == str(milestone.id)
    assert event.sequence == 1
    assert event.actorid == str(team.maintainer.user_id)
    assert event.data["name"] == "1.0"
    assert event.data["due_date"] == "2027-01-01"
    assert event.data["progress"] == {"total": 0, "done": 0}
    assert event.data["deleted"] is False


@pytest.mark.parametrize("role", ["developer", "reporter", "viewer"])
async def test_only_maintainers_and_owners_change_milestones(
    cases: MilestoneUseCases, team: Team, role: str
) -> None:
    who = getattr(team, role)
    with pytest.raises(ForbiddenError):
        await cases.create_milestone(who, "BUG", NewMilestone("x"))
    milestone = await make(cases, team)
    with pytest.raises(ForbiddenError):
        await cases.update_milestone(who, milestone.id, MilestonePatch(name="y"))
    with pytest.raises(ForbiddenError):
        await cases.delete_milestone(who, milestone.id)
    assert (await cases.get_milestone(who, milestone.id)).name == "1.0"
    owned = await cases.create_milestone(team.owner, "BUG", NewMilestone("by owner"))
    assert owned.name == "by owner"


async def test_outsiders_get_not_found(cases: MilestoneUseCases, team: Team) -> None:
    milestone = await make(cases, team)
    with pytest.raises(ProjectNotFoundError):
        await cases.create_milestone(team.outsider, "BUG", NewMilestone("x"))
    with pytest.raises(ProjectNotFoundError):
        await cases.list_milestones(team.outsider, "BUG")
    for call in (
        cases.get_milestone(team.outsider, milestone.id),
        cases.update_milestone(team.outsider, milestone.id, MilestonePatch(name="y")),
        cases.delete_milestone(team.outsider, milestone.id),
        cases.get_milestone(team.owner, uuid.uuid4()),
    ):
        with pytest.raises(MilestoneNotFoundError):
            await call


async def test_archived_projects_refuse_changes(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team)
    team.project.archived = True
    with pytest.raises(ProjectArchivedError):
        await cases.create_milestone(team.maintainer, "BUG", NewMilestone("x"))
    with pytest.raises(ProjectArchivedError):
        await cases.update_milestone(team.maintainer, milestone.id, MilestonePatch(name="y"))
    with pytest.raises(ProjectArchivedError):
        await cases.delete_milestone(team.maintainer, milestone.id)
    assert world.database.event_names() == ["milestone.created"]


async def test_names_are_unique_per_project_whatever_their_case(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    first = await make(cases, team, "Beta")
    with pytest.raises(MilestoneExistsError):
        await make(cases, team, "BETA")
    other = await make(cases, team, "Gamma")
    with pytest.raises(MilestoneExistsError):
        await cases.update_milestone(team.maintainer, other.id, MilestonePatch(name="beta"))
    # Another project may use the name; a deleted milestone's name is free again.
    world.project("OTHER", m=(team.maintainer, ProjectRole.MAINTAINER))
    await cases.create_milestone(team.maintainer, "OTHER", NewMilestone("beta"))
    await cases.delete_milestone(team.maintainer, first.id)
    again = await make(cases, team, "beta")
    assert again.name == "beta"


# -- list ------------------------------------------------------------------------------


async def test_lists_by_due_date_then_name_in_pages_filtered_by_state(
    cases: MilestoneUseCases, team: Team
) -> None:
    late = await make(cases, team, "late", due_date=date(2027, 6, 1))
    undated_b = await make(cases, team, "b")
    undated_a = await make(cases, team, "a")
    soon = await make(cases, team, "soon", due_date=date(2027, 1, 1))
    closed = await make(cases, team, "closed", due_date=date(2026, 1, 1))
    await cases.update_milestone(
        team.maintainer, closed.id, MilestonePatch(state=MilestoneState.CLOSED)
    )
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await cases.list_milestones(team.viewer, "BUG", limit=2, cursor=cursor)
        seen += [m.id for m in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [soon.id, late.id, undated_a.id, undated_b.id]
    only_closed = await cases.list_milestones(team.viewer, "BUG", state="closed")
    assert [m.id for m in only_closed.items] == [closed.id]
    every = await cases.list_milestones(team.viewer, str(team.project.id), state="all")
    assert [m.id for m in every.items] == [closed.id, soon.id, late.id, undated_a.id, undated_b.id]
    with pytest.raises(InvalidCursorError):
        await cases.list_milestones(team.viewer, "BUG", cursor="not-a-cursor")


# -- update ----------------------------------------------------------------------------


async def test_update_changes_fields_bumps_the_version_and_says_what_changed(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team, "1.0", due_date=date(2027, 1, 1))
    updated = await cases.update_milestone(
        team.owner,
        milestone.id,
        MilestonePatch(name="1.0 final", due_date=None, state=MilestoneState.CLOSED),
        expected_version=1,
    )
    assert (updated.name, updated.due_date, updated.state, updated.version) == (
        "1.0 final",
        None,
        MilestoneState.CLOSED,
        2,
    )
    event = world.database.events[-1]
    assert event.name == "milestone.updated"
    assert event.sequence == 2
    assert event.data["changes"] == {
        "name": {"from": "1.0", "to": "1.0 final"},
        "due_date": {"from": "2027-01-01", "to": None},
        "state": {"from": "open", "to": "closed"},
    }
    # No change: no new version, no event.
    same = await cases.update_milestone(team.owner, milestone.id, MilestonePatch(name="1.0 final"))
    assert same.version == 2
    assert world.database.event_names() == ["milestone.created", "milestone.updated"]


async def test_update_with_a_stale_version_changes_nothing(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team)
    with pytest.raises(PreconditionFailedError):
        await cases.update_milestone(
            team.maintainer, milestone.id, MilestonePatch(name="x"), expected_version=7
        )
    assert (await cases.get_milestone(team.maintainer, milestone.id)).name == "1.0"


async def test_update_never_writes_the_counts_which_are_the_databases(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team)
    # As the trigger would have counted them meanwhile.
    world.database.state.milestones[milestone.id].total = 3
    world.database.state.milestones[milestone.id].done = 1
    updated = await cases.update_milestone(team.maintainer, milestone.id, MilestonePatch(name="x"))
    assert (updated.total, updated.done) == (3, 1)
    assert world.database.events[-1].data["progress"] == {"total": 3, "done": 1}


# -- delete ----------------------------------------------------------------------------


async def test_delete_clears_the_first_batch_and_the_job_the_rest(
    world: TicketsWorld,
    cases: MilestoneUseCases,
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(milestones_module, "DELETE_BATCH", 3)
    milestone = await make(cases, team)
    ticket_ids = await planned_tickets(world, team, milestone, 7)
    other = await make(cases, team, "2.0")
    kept = await planned_tickets(world, team, other, 1)

    await cases.delete_milestone(team.maintainer, milestone.id)

    assert cases.wake.is_set()  # tickets remain: the job is woken
    with pytest.raises(MilestoneNotFoundError):
        await cases.get_milestone(team.maintainer, milestone.id)
    state = world.database.state
    assert state.milestones[milestone.id].deleted_at is not None
    assert sum(state.tickets[t].milestone_id is None for t in ticket_ids) == 3
    deleted = [e for e in world.database.events if e.name == "milestone.deleted"]
    assert [(e.subject, e.sequence, e.data["deleted"]) for e in deleted] == [
        (str(milestone.id), 2, True)
    ]

    assert await cases.clear_deleted_milestones() == 4
    state = world.database.state  # each commit publishes a new state
    assert milestone.id not in state.milestones  # purged
    for ticket_id in ticket_ids:
        ticket = state.tickets[ticket_id]
        assert (ticket.milestone_id, ticket.version) == (None, 2)
        [entry] = world.database.history_of(ticket_id)
        assert (entry.field, entry.from_value, entry.to_value) == (
            "milestone_id",
            str(milestone.id),
            None,
        )
        [event] = [
            e
            for e in world.database.events
            if e.name == "ticket.updated" and e.subject == str(ticket_id)
        ]
        assert event.data["changes"] == {"milestone_id": {"from": str(milestone.id), "to": None}}
        assert event.sequence == 2
    # The first batch is the deleter's, the rest the service's.
    actors = [world.database.history_of(t)[0].actor_id for t in ticket_ids]
    assert actors.count(team.maintainer.user_id) == 3
    assert actors.count(SYSTEM.user_id) == 4
    assert state.tickets[kept[0]].milestone_id == other.id
    # Nothing left: running it again is harmless.
    assert await cases.clear_deleted_milestones() == 0


async def test_delete_of_a_milestone_with_few_tickets_finishes_in_its_transaction(
    world: TicketsWorld, cases: MilestoneUseCases, team: Team
) -> None:
    milestone = await make(cases, team)
    ticket_ids = await planned_tickets(world, team, milestone, 2)
    await cases.delete_milestone(team.maintainer, milestone.id)
    assert not cases.wake.is_set()
    assert all(world.database.state.tickets[t].milestone_id is None for t in ticket_ids)
    assert await cases.clear_deleted_milestones() == 0
    assert milestone.id not in world.database.state.milestones
    with pytest.raises(MilestoneNotFoundError):
        await cases.delete_milestone(team.maintainer, milestone.id)


async def test_the_job_runs_again_when_woken_and_backs_off_after_errors(
    cases: MilestoneUseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    finished = asyncio.Event()

    async def clear() -> int:
        calls.append("run")
        if len(calls) == 1:
            raise RuntimeError("database gone")  # logged, retried after the backoff
        if len(calls) == 2:
            cases.wake.set()  # a deletion during the run: run again at once
        if len(calls) == 3:
            finished.set()
        return 0

    monkeypatch.setattr(cases, "clear_deleted_milestones", clear)
    job = asyncio.create_task(cases.keep_clearing(interval=3600, first_backoff=0))
    try:
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        job.cancel()
    assert calls == ["run", "run", "run"]
