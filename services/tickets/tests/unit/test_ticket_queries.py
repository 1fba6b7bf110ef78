"""A typed query compiled to search conditions, and saved filters, on the fakes: what each
term becomes, what it looks up, and the 422 it answers when that names nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.application.ports import Among, Compare, Flag, WithLabels
from bugtracker_tickets.application.saved_filters import (
    FilterChanges,
    FilterDraft,
    SavedFilterUseCases,
)
from bugtracker_tickets.application.ticket_queries import (
    CompiledQuery,
    QueryCompiler,
    web_search_text,
)
from bugtracker_tickets.application.use_cases import ListRequest, NewTicket
from bugtracker_tickets.domain.errors import (
    FilterNotFoundError,
    ForbiddenError,
    InvalidFilterProjectError,
    InvalidQueryError,
)
from bugtracker_tickets.domain.planning import Milestone, MilestoneState
from bugtracker_tickets.domain.query_language import Words
from bugtracker_tickets.domain.saved_filters import SavedFilter

from services.tickets.tests.unit.fakes import Team, TicketsWorld

NOW = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)


async def compiled(world: TicketsWorld, team: Team, query: str) -> CompiledQuery:
    compiler = QueryCompiler(world.database.unit_of_work, world.projects)
    return await compiler.compile(
        team.developer, query, (team.project.id,), cross_project=False, now=NOW
    )


async def test_terms_become_conditions(world: TicketsWorld, team: Team) -> None:
    found = await compiled(
        world,
        team,
        "status:open,in_review -label:wontfix priority:>=high is:open -is:blocked "
        "has:attachment assignee:@me,none sort:priority-desc",
    )
    assert found.conditions == (
        Among("status", ("open", "in_review")),
        WithLabels(("wontfix",), negated=True),
        Compare("priority_rank", ">=", 2),
        Among("status_category", ("done",), negated=True),
        Flag("blocked", negated=True),
        Flag("attachment"),
        Among("assignee_id", (team.developer.user_id, None)),
    )
    assert found.sort == "-priority"
    assert found.project_ids == (team.project.id,)


async def test_a_negated_comparison_is_the_opposite_one(world: TicketsWorld, team: Team) -> None:
    found = await compiled(world, team, "-priority:>=high -due:<2027-01-01")
    assert found.conditions == (
        Compare("priority_rank", "<", 2),
        Compare("due_date", ">=", date(2027, 1, 1)),
    )
    with pytest.raises(InvalidQueryError, match="cannot be negated"):
        await compiled(world, team, "-created:2026-01-01")


async def test_dates_are_utc_days_and_ages_count_from_now(world: TicketsWorld, team: Team) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    cases = {
        "created:2026-01-01": (
            Compare("created_at", ">=", day),
            Compare("created_at", "<", day + timedelta(days=1)),
        ),
        "created:>2026-01-01": (Compare("created_at", ">=", day + timedelta(days=1)),),
        "created:<=2026-01-01": (Compare("created_at", "<", day + timedelta(days=1)),),
        "updated:<7d": (Compare("updated_at", ">", NOW - timedelta(days=7)),),
        "updated:>2w": (Compare("updated_at", "<", NOW - timedelta(weeks=2)),),
        "due:<7d": (Compare("due_date", "<", date(2026, 12, 7)),),
        "due:3d": (
            Compare("due_date", ">=", NOW.date()),
            Compare("due_date", "<=", date(2026, 12, 3)),
        ),
    }
    for query, conditions in cases.items():
        assert (await compiled(world, team, query)).conditions == conditions, query


async def test_people_milestones_and_parents_are_looked_up(world: TicketsWorld, team: Team) -> None:
    members = await world.projects.members(team.project.id, team.owner)
    viewer = next(m for m in members if m.user_id == team.viewer.user_id)
    milestone = Milestone(
        uuid.uuid4(), team.project.id, "Release 1.0", "", None, MilestoneState.OPEN, NOW, NOW
    )
    world.database.state.milestones[milestone.id] = milestone
    parent = (
        await world.tickets.create_ticket(team.reporter, "BUG", NewTicket(title="parent"))
    ).ticket
    found = await compiled(
        world,
        team,
        f'reporter:{viewer.email.upper()} milestone:"release 1.0",none parent:{parent.key.lower()}',
    )
    assert found.conditions == (
        Among("reporter_id", (team.viewer.user_id,)),
        Among("milestone_id", (milestone.id, None)),
        Among("parent_id", (parent.id,)),
    )


@pytest.mark.parametrize(
    ("query", "position", "says"),
    [
        ("label:x assignee:nobody@example.com", 8, "no member of the projects searched"),
        ('milestone:"v9"', 0, "no milestone v9"),
        ("parent:BUG-404", 0, "no ticket BUG-404"),
        ("status:open status:shipped", 12, "the project has no status shipped"),
        ("type:epic", 0, "the project has no type epic"),
        ("field.nosuch:1", 0, "field.nosuch names no field"),
        ("is:open,closed", 0, "takes one value"),
    ],
)
async def test_what_names_nothing_is_invalid_at_its_term(
    world: TicketsWorld, team: Team, query: str, position: int, says: str
) -> None:
    with pytest.raises(InvalidQueryError, match=says) as caught:
        await compiled(world, team, query)
    assert caught.value.position == position
    assert caught.value.extra == {"position": position}


async def test_project_narrows_a_cross_project_search(world: TicketsWorld, team: Team) -> None:
    other = world.project("OPS", dev=(team.developer, ProjectRole.DEVELOPER))
    hidden = world.project("SEC", owner=(team.owner, ProjectRole.OWNER))
    compiler = QueryCompiler(world.database.unit_of_work, world.projects)
    every = (team.project.id, other.id)
    found = await compiler.compile(
        team.developer, "project:ops", every, cross_project=True, now=NOW
    )
    assert found.project_ids == (other.id,)
    for unseen in ("project:SEC", "project:NOPE"):
        with pytest.raises(InvalidQueryError, match=r"no project \w+ that you can see"):
            await compiler.compile(team.developer, unseen, every, cross_project=True, now=NOW)
    assert hidden.id not in every


def test_words_become_web_search_text() -> None:
    words = [
        Words("crash", phrase=False, negated=False, position=0),
        Words("on save", phrase=True, negated=False, position=6),
        Words("login", phrase=False, negated=True, position=16),
        Words('say "hi"', phrase=True, negated=False, position=23),
    ]
    assert web_search_text(words) == 'crash "on save" -login "say  hi"'
    assert web_search_text([]) is None


async def test_a_query_filters_the_list_with_the_other_parameters(
    world: TicketsWorld, team: Team
) -> None:
    for title, labels in (("a", ["ui"]), ("b", ["ui", "wontfix"]), ("c", [])):
        await world.tickets.create_ticket(
            team.reporter, "BUG", NewTicket(title=title, labels=tuple(labels))
        )
    listed = await world.tickets.list_tickets(
        team.viewer, "BUG", ListRequest(query="label:ui -label:wontfix")
    )
    assert [t.title for t in listed.items] == ["a"]


# -- saved filters ----------------------------------------------------------------------


def test_a_shared_filter_needs_a_project_and_is_seen_by_its_members() -> None:
    owner, member = uuid.uuid4(), uuid.uuid4()
    project = uuid.uuid4()
    with pytest.raises(InvalidFilterProjectError):
        SavedFilter(uuid.uuid4(), owner, "x", "a", None, True, NOW, NOW)
    shared = SavedFilter(uuid.uuid4(), owner, "x", "a", project, True, NOW, NOW)
    private = SavedFilter(uuid.uuid4(), owner, "x", "a", project, False, NOW, NOW)
    assert shared.visible_to(member, [project])
    assert not shared.visible_to(member, [])
    assert not private.visible_to(member, [project])
    assert private.visible_to(owner, [])


async def test_only_the_owner_changes_a_filter_and_others_see_it_while_members(
    world: TicketsWorld, team: Team
) -> None:
    filters = SavedFilterUseCases(world.tickets)
    saved = await filters.create(
        team.developer, FilterDraft("UI", "label:ui", team.project.id, shared=True)
    )
    assert (await filters.get(team.viewer, saved.id)).name == "UI"
    with pytest.raises(ForbiddenError):
        await filters.update(
            team.viewer, saved.id, FilterChanges(name="mine"), expected_version=None
        )
    changed = await filters.update(
        team.developer, saved.id, FilterChanges(shared=False), expected_version=1
    )
    assert changed.version == 2
    with pytest.raises(FilterNotFoundError):
        await filters.get(team.viewer, saved.id)
    with pytest.raises(FilterNotFoundError):
        await filters.get(team.outsider, saved.id)
    with pytest.raises(InvalidQueryError):
        await filters.create(team.developer, FilterDraft("bad", "colour:red"))
    with pytest.raises(InvalidFilterProjectError):
        await filters.create(team.outsider, FilterDraft("x", "a", team.project.id))
    await filters.delete(team.developer, saved.id, expected_version=None)
    assert world.database.state.saved_filters == {}
