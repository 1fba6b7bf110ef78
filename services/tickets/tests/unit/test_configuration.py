"""Tracker configuration as data (docs/adr/0040): the pure rules of workflows, ticket
types and custom fields, and the configuration use cases on the in-memory fakes."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_shared.permissions import ProjectRole, permissions_for
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.application.configuration import FieldPatch, NewField
from bugtracker_tickets.application.field_filters import FieldCondition
from bugtracker_tickets.application.use_cases import ListRequest, NewTicket
from bugtracker_tickets.domain.configuration import (
    DEFAULT_TICKET_TYPES,
    DEFAULT_WORKFLOW,
    Category,
    FieldDef,
    FieldOption,
    FieldType,
    StatusDef,
    TicketTypeDef,
    TicketTypes,
    TransitionDef,
    Workflow,
    apply_field_values,
)
from bugtracker_tickets.domain.errors import (
    FieldExistsError,
    FieldNotFoundError,
    ForbiddenError,
    InvalidConfigurationError,
    InvalidFieldValuesError,
    InvalidFilterError,
    InvalidTicketTypeError,
    InvalidTransitionError,
    OptionInUseError,
    ResolutionRequiredError,
    StatusInUseError,
    TypeInUseError,
)
from bugtracker_tickets.domain.tickets import ProjectAccess, Ticket, TicketPatch
from bugtracker_tickets.domain.workflow import Resolution, available, plan_transition

from services.tickets.tests.unit.fakes import Team, TicketsWorld

TODO, DOING, DONE = Category.TODO, Category.IN_PROGRESS, Category.DONE
REPORTER, DEVELOPER, MAINTAINER = (
    ProjectRole.REPORTER,
    ProjectRole.DEVELOPER,
    ProjectRole.MAINTAINER,
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


# -- workflows -----------------------------------------------------------------------------


def workflow(
    statuses: tuple[StatusDef, ...] = (StatusDef("a", "A", TODO), StatusDef("b", "B", DONE)),
    transitions: tuple[TransitionDef, ...] = (TransitionDef("a", "b"), TransitionDef("b", "a")),
    initial: str = "a",
) -> Workflow:
    return Workflow(statuses=statuses, initial=initial, transitions=transitions)


def problems(broken: Workflow | TicketTypes) -> str:
    with pytest.raises(InvalidConfigurationError) as raised:
        broken.validate()
    return str(raised.value)


def test_a_valid_workflow_and_the_defaults_pass() -> None:
    workflow().validate()
    DEFAULT_WORKFLOW.validate()
    DEFAULT_TICKET_TYPES.validate()


def chain(n: int) -> Workflow:
    statuses = tuple(StatusDef(f"s{i}", f"S{i}", DONE if i == n - 1 else TODO) for i in range(n))
    moves = tuple(TransitionDef(f"s{i}", f"s{i + 1}") for i in range(n - 1))
    return Workflow(statuses=statuses, initial="s0", transitions=moves)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            workflow(
                statuses=(StatusDef("Bad key", "A", TODO), StatusDef("b", "B", DONE)),
                transitions=(TransitionDef("Bad key", "b"),),
                initial="Bad key",
            ),
            "is not a key",
        ),
        (workflow(statuses=(StatusDef("a", "", TODO), StatusDef("b", "B", DONE))), "name"),
        (
            workflow(
                statuses=(
                    StatusDef("a", "A", TODO),
                    StatusDef("b", "B", DONE),
                    StatusDef("b", "B again", DONE),
                )
            ),
            "listed twice: b",
        ),
        (chain(31), "1 to 30 statuses"),
        (workflow(statuses=(StatusDef("a", "A", TODO), StatusDef("b", "B", DOING))), "done"),
        (workflow(initial="zzz"), "initial status 'zzz'"),
        (
            workflow(transitions=(TransitionDef("a", "b"), TransitionDef("a", "nowhere"))),
            "'nowhere', which is not a status",
        ),
        (
            workflow(transitions=(TransitionDef("a", "b"), TransitionDef("b", "b"))),
            "to itself",
        ),
        (
            workflow(transitions=(TransitionDef("a", "b"), TransitionDef("a", "b", REPORTER))),
            "transition is listed twice",
        ),
        (workflow(transitions=(TransitionDef("b", "a"),)), "cannot be reached from 'a': b"),
        (
            workflow(transitions=(TransitionDef("a", "b", ProjectRole.OWNER),)),
            "min_role",
        ),
    ],
)
def test_workflow_validate_rejects_each_broken_rule(broken: Workflow, message: str) -> None:
    assert message in problems(broken)


def test_thirty_statuses_are_allowed() -> None:
    chain(30).validate()


def test_validate_lists_every_problem_at_once() -> None:
    broken = workflow(
        statuses=(StatusDef("a", "A", TODO), StatusDef("a", "A", TODO)),
        transitions=(TransitionDef("a", "a"),),
        initial="x",
    )
    with pytest.raises(InvalidConfigurationError) as raised:
        broken.validate()
    assert len(raised.value.extra["errors"]) >= 4


# The fixed workflow the service had before ADR 0040, written out as it was.
OLD_TRANSITIONS = {
    "open": {"in_progress", "closed"},
    "in_progress": {"open", "in_review", "done", "closed"},
    "in_review": {"in_progress", "done", "closed"},
    "done": {"open", "closed"},
    "closed": {"open"},
}
OLD_STATUSES = list(OLD_TRANSITIONS)
# A reporter could only close and reopen the tickets they reported.
OLD_REPORTER_TARGETS = {"closed", "open"}


def access_of(
    role: ProjectRole | None, *, admin: bool = False, archived: bool = False
) -> ProjectAccess:
    return ProjectAccess(
        project_id=uuid.uuid4(),
        project_key="BUG",
        archived=archived,
        role=role,
        permissions=permissions_for(role, is_admin=admin),
    )


def old_allowed(role: ProjectRole | None, admin: bool, own: bool, current: str) -> set[str]:
    if admin or role in (ProjectRole.OWNER, ProjectRole.MAINTAINER, ProjectRole.DEVELOPER):
        return OLD_TRANSITIONS[current]
    if role is ProjectRole.REPORTER and own:
        return OLD_TRANSITIONS[current] & OLD_REPORTER_TARGETS
    return set()


WHO = [(role, False) for role in ProjectRole] + [(None, True)]


@pytest.mark.parametrize(("role", "admin"), WHO)
@pytest.mark.parametrize("own", [True, False])
def test_the_default_workflow_reproduces_the_old_rules(
    role: ProjectRole | None, admin: bool, own: bool
) -> None:
    access = access_of(role, admin=admin)
    caller, other = uuid.uuid4(), uuid.uuid4()
    reporter = caller if own else other
    assert set(DEFAULT_WORKFLOW.keys()) == set(OLD_STATUSES)
    for current in OLD_STATUSES:
        expected = old_allowed(role, admin, own, current)
        found = available(access, caller, reporter, DEFAULT_WORKFLOW, current)
        assert {t.to for t in found} == expected, (role, own, current)
        assert all(t.requires_resolution == (t.to == "closed") for t in found)
        for to in OLD_STATUSES:
            if to not in OLD_TRANSITIONS[current]:
                with pytest.raises(InvalidTransitionError):
                    plan_transition(
                        access, caller, reporter, DEFAULT_WORKFLOW, current, to, Resolution.FIXED
                    )
            elif to not in expected:
                with pytest.raises(ForbiddenError):
                    plan_transition(
                        access, caller, reporter, DEFAULT_WORKFLOW, current, to, Resolution.FIXED
                    )
            else:
                plan_transition(
                    access, caller, reporter, DEFAULT_WORKFLOW, current, to, Resolution.FIXED
                )


def test_an_archived_project_offers_no_transition() -> None:
    access = access_of(ProjectRole.OWNER, archived=True)
    caller = uuid.uuid4()
    assert available(access, caller, caller, DEFAULT_WORKFLOW, "open") == []


def test_the_default_workflow_categories() -> None:
    assert {s.key: s.category for s in DEFAULT_WORKFLOW.statuses} == {
        "open": TODO,
        "in_progress": DOING,
        "in_review": DOING,
        "done": DONE,
        "closed": DONE,
    }
    assert DEFAULT_WORKFLOW.initial == "open"
    assert DEFAULT_TICKET_TYPES.keys() == ["bug", "feature", "task", "improvement"]
    assert DEFAULT_TICKET_TYPES.default == "bug"


def plan(current: str, to: str, resolution: Resolution | None) -> Resolution | None:
    developer = access_of(ProjectRole.DEVELOPER)
    caller = uuid.uuid4()
    return plan_transition(developer, caller, caller, DEFAULT_WORKFLOW, current, to, resolution)


def test_plan_transition_resolutions() -> None:
    assert plan("in_progress", "done", None) is Resolution.FIXED
    assert plan("in_progress", "done", Resolution.DUPLICATE) is Resolution.DUPLICATE
    with pytest.raises(ResolutionRequiredError):
        plan("open", "closed", None)
    assert plan("open", "closed", Resolution.WONT_FIX) is Resolution.WONT_FIX
    # Leaving a done status clears it, whatever was given.
    assert plan("done", "open", Resolution.FIXED) is None
    assert plan("closed", "open", None) is None
    assert plan("open", "in_progress", Resolution.INVALID) is None


def test_an_invalid_transition_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidTransitionError) as raised:
        plan("open", "done", None)
    assert set(raised.value.extra["allowed"]) == {"in_progress", "closed"}


def test_ticket_types_validate() -> None:
    assert "listed twice: bug" in problems(
        TicketTypes((TicketTypeDef("bug", "Bug"), TicketTypeDef("bug", "Bug 2")))
    )
    assert "1 to 30 ticket types" in problems(TicketTypes(()))
    assert "is not a key" in problems(TicketTypes((TicketTypeDef("Bug", "Bug"),)))
    too_many = tuple(TicketTypeDef(f"t{i}", f"T{i}") for i in range(31))
    assert "1 to 30 ticket types" in problems(TicketTypes(too_many))


# -- custom fields -------------------------------------------------------------------------


def fdef(
    type_: FieldType,
    key: str = "f",
    *,
    options: tuple[str, ...] = (),
    required: bool = False,
    ticket_types: tuple[str, ...] | None = None,
) -> FieldDef:
    return FieldDef(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        key=key,
        name=key.title(),
        type=type_,
        created_at=NOW,
        updated_at=NOW,
        options=tuple(FieldOption(v, v.upper()) for v in options),
        required=required,
        ticket_types=ticket_types,
    )


USER = uuid.uuid4()


@pytest.mark.parametrize(
    ("type_", "given", "stored"),
    [
        (FieldType.TEXT, "some text", "some text"),
        (FieldType.TEXT, "x" * 1000, "x" * 1000),
        (FieldType.NUMBER, 3, 3),
        (FieldType.NUMBER, -2.5, -2.5),
        (FieldType.DATE, "2026-02-03", "2026-02-03"),
        (FieldType.BOOL, False, False),
        (FieldType.SELECT, "b", "b"),
        (FieldType.MULTI_SELECT, ["c", "a", "c"], ["a", "c"]),
        (FieldType.MULTI_SELECT, [], []),
        (FieldType.USER, str(USER).upper(), str(USER)),
        (FieldType.URL, "https://example.org/a?b=c", "https://example.org/a?b=c"),
        (FieldType.URL, "http://example.org", "http://example.org"),
    ],
)
def test_field_parse_accepts_good_values(type_: FieldType, given: object, stored: object) -> None:
    definition = fdef(type_, options=("a", "b", "c") if type_.has_options else ())
    assert definition.parse(given) == stored
    assert definition.parse(None) is None


@pytest.mark.parametrize(
    ("type_", "given"),
    [
        (FieldType.TEXT, 5),
        (FieldType.TEXT, "x" * 1001),
        (FieldType.NUMBER, "3"),
        (FieldType.NUMBER, True),
        (FieldType.NUMBER, float("nan")),
        (FieldType.NUMBER, float("inf")),
        (FieldType.NUMBER, 1e15),
        (FieldType.DATE, "2026-13-01"),
        (FieldType.DATE, 20260203),
        (FieldType.BOOL, "true"),
        (FieldType.BOOL, 1),
        (FieldType.SELECT, "z"),
        (FieldType.SELECT, ["a"]),
        (FieldType.MULTI_SELECT, "a"),
        (FieldType.MULTI_SELECT, ["a", "z"]),
        (FieldType.USER, "not a user"),
        (FieldType.URL, "ftp://example.org/file"),
        (FieldType.URL, "https://"),
        (FieldType.URL, "javascript:alert(1)"),
        (FieldType.URL, "https://example.org/" + "x" * 2000),
        (FieldType.URL, 42),
    ],
)
def test_field_parse_rejects_bad_values(type_: FieldType, given: object) -> None:
    definition = fdef(type_, options=("a", "b", "c") if type_.has_options else ())
    with pytest.raises(ValueError, match="must be"):
        definition.parse(given)


def test_field_definitions_validate() -> None:
    with pytest.raises(InvalidConfigurationError, match="1 to 100 options"):
        fdef(FieldType.SELECT).validate(["bug"])
    with pytest.raises(InvalidConfigurationError, match="has no options"):
        fdef(FieldType.TEXT, options=("a",)).validate(["bug"])
    with pytest.raises(InvalidConfigurationError, match="listed twice"):
        fdef(FieldType.SELECT, options=("a", "a")).validate(["bug"])
    with pytest.raises(InvalidConfigurationError, match="Not ticket types of the project: epic"):
        fdef(FieldType.TEXT, ticket_types=("epic",)).validate(["bug"])
    fdef(FieldType.TEXT, ticket_types=("bug",)).validate(["bug"])


def field_problems(*args: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(InvalidFieldValuesError) as raised:
        apply_field_values(*args, **kwargs)
    return {e["loc"][2]: e["msg"] for e in raised.value.extra["errors"]}


SEVERITY = fdef(FieldType.SELECT, "severity", options=("low", "high"), ticket_types=("bug",))
NOTES = fdef(FieldType.TEXT, "notes")
TAGS = fdef(FieldType.MULTI_SELECT, "tags", options=("x", "y", "z"))
ESTIMATE = fdef(FieldType.NUMBER, "estimate", required=True)
DEFINITIONS = (SEVERITY, NOTES, TAGS, ESTIMATE)


def test_apply_field_values_rejects_unknown_and_inapplicable_keys() -> None:
    found = field_problems(
        DEFINITIONS, "task", {}, {"nope": 1, "severity": "low", "estimate": 1}, creating=True
    )
    assert found == {
        "nope": "is not a field of this project",
        "severity": "does not apply to tickets of type task",
    }


def test_apply_field_values_needs_required_fields_on_create_only() -> None:
    assert field_problems(DEFINITIONS, "bug", {}, {"notes": "n"}, creating=True) == {
        "estimate": "is required"
    }
    assert field_problems(DEFINITIONS, "bug", {}, None, creating=True) == {
        "estimate": "is required"
    }
    # A ticket from before the field was required keeps working until someone sets it.
    result = apply_field_values(DEFINITIONS, "bug", {}, {"notes": "n"}, creating=False)
    assert result.values == {"notes": "n"}


def test_a_required_field_cannot_be_cleared() -> None:
    current = {"estimate": 3}
    assert field_problems(DEFINITIONS, "bug", current, {"estimate": None}, creating=False) == {
        "estimate": "is required"
    }


def test_a_bad_value_is_reported_once_not_as_missing() -> None:
    assert field_problems(DEFINITIONS, "bug", {}, {"estimate": "three"}, creating=True) == {
        "estimate": "must be a number"
    }


def test_null_clears_and_the_changes_are_listed_in_field_order() -> None:
    current = {"notes": "old", "estimate": 2, "tags": ["x"]}
    result = apply_field_values(
        DEFINITIONS,
        "bug",
        current,
        {"notes": None, "tags": ["z", "x", "z"], "estimate": 2, "severity": "high"},
        creating=False,
    )
    assert result.values == {"estimate": 2, "tags": ["x", "z"], "severity": "high"}
    assert list(result.changed.items()) == [
        ("severity", (None, "high")),
        ("notes", ("old", None)),
        ("tags", (["x"], ["x", "z"])),
    ]


def test_an_empty_multi_select_clears_it() -> None:
    result = apply_field_values(DEFINITIONS, "bug", {"tags": ["y"]}, {"tags": []}, creating=False)
    assert "tags" not in result.values
    assert result.changed == {"tags": (["y"], None)}


def test_values_of_fields_not_applying_to_a_new_type_are_dropped() -> None:
    current = {"severity": "high", "notes": "kept", "estimate": 1}
    result = apply_field_values(DEFINITIONS, "task", current, None, creating=False)
    assert result.values == {"notes": "kept", "estimate": 1}
    assert result.changed == {"severity": ("high", None)}


def test_values_of_fields_no_longer_defined_are_dropped() -> None:
    result = apply_field_values(
        DEFINITIONS, "bug", {"gone": 1, "estimate": 1}, None, creating=False
    )
    assert result.values == {"estimate": 1}
    assert result.changed == {"gone": (1, None)}


# -- the use cases on the fakes ------------------------------------------------------------


async def create(
    world: TicketsWorld, who: Principal, project: str = "BUG", **kwargs: Any
) -> Ticket:
    return (await world.tickets.create_ticket(who, project, NewTicket("t", **kwargs))).ticket


TRIAGE = Workflow(
    statuses=(
        StatusDef("new", "New", TODO),
        StatusDef("triaged", "Triaged", DOING),
        StatusDef("solved", "Solved", DONE),
        StatusDef("rejected", "Rejected", DONE, requires_resolution=True),
    ),
    initial="new",
    transitions=(
        TransitionDef("new", "triaged", DEVELOPER),
        TransitionDef("triaged", "solved", MAINTAINER),
        TransitionDef("new", "rejected", REPORTER),
        TransitionDef("solved", "new", REPORTER),
        TransitionDef("rejected", "new", DEVELOPER),
    ),
)


async def use_triage(world: TicketsWorld, team: Team, **migrate: str) -> Workflow:
    return await world.configuration.replace_workflow(
        team.maintainer, "BUG", TRIAGE, migrate, expected_version=None
    )


async def test_a_new_project_has_the_default_configuration(world: TicketsWorld, team: Team) -> None:
    config = await world.configuration.configuration(team.viewer, "BUG")
    assert (config.workflow, config.types, config.fields) == (
        DEFAULT_WORKFLOW,
        DEFAULT_TICKET_TYPES,
        (),
    )


async def test_replacing_the_workflow_checks_the_version(world: TicketsWorld, team: Team) -> None:
    with pytest.raises(PreconditionFailedError):
        await world.configuration.replace_workflow(
            team.maintainer, "BUG", TRIAGE, {}, expected_version=2
        )
    new = await world.configuration.replace_workflow(
        team.maintainer, "BUG", TRIAGE, {}, expected_version=1
    )
    assert new.version == 2
    stored = (await world.configuration.configuration(team.viewer, "BUG")).workflow
    assert (stored.keys(), stored.version) == (TRIAGE.keys(), 2)
    with pytest.raises(PreconditionFailedError):
        await world.configuration.replace_workflow(
            team.maintainer, "BUG", DEFAULT_WORKFLOW, {"new": "open"}, expected_version=1
        )
    assert world.database.event_names() == ["project.workflow_changed"]


@pytest.mark.parametrize("who", ["reporter", "developer", "viewer", "outsider"])
async def test_only_maintainers_change_the_workflow(
    world: TicketsWorld, team: Team, who: str
) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 (checked below)
        await world.configuration.replace_workflow(
            getattr(team, who), "BUG", TRIAGE, {}, expected_version=None
        )
    if who == "outsider":
        assert raised.value.__class__.__name__ == "ProjectNotFoundError"
    else:
        assert isinstance(raised.value, ForbiddenError)
    assert world.database.commits == 0
    if who != "outsider":
        seen = await world.configuration.configuration(getattr(team, who), "BUG")
        assert seen.workflow == DEFAULT_WORKFLOW


async def test_an_owner_changes_the_workflow_too(world: TicketsWorld, team: Team) -> None:
    await world.configuration.replace_workflow(team.owner, "BUG", TRIAGE, {}, expected_version=None)
    assert (await world.configuration.configuration(team.viewer, "BUG")).workflow.initial == "new"


async def test_an_invalid_workflow_is_refused_before_anything(
    world: TicketsWorld, team: Team
) -> None:
    broken = dataclasses.replace(TRIAGE, initial="nope")
    with pytest.raises(InvalidConfigurationError):
        await world.configuration.replace_workflow(
            team.maintainer, "BUG", broken, {}, expected_version=None
        )
    assert world.database.commits == 0


async def test_removing_used_statuses_needs_migrate(world: TicketsWorld, team: Team) -> None:
    first, second = await create(world, team.developer), await create(world, team.developer)
    await world.tickets.transition(team.developer, second.key, "in_progress", None)
    third = await create(world, team.developer)
    await world.tickets.transition(team.developer, third.key, "closed", Resolution.INVALID)
    commits = world.database.commits
    with pytest.raises(StatusInUseError) as raised:
        await use_triage(world, team, open="new")
    assert raised.value.extra == {"counts": {"in_progress": 1, "closed": 1}}
    assert raised.value.code == "status_in_use"
    assert world.database.commits == commits
    assert world.database.ticket(first.id).status == "open"
    # A move to a status the new workflow does not have is no move.
    with pytest.raises(InvalidConfigurationError, match="in_progress"):
        await use_triage(world, team, open="new", in_progress="doing", closed="rejected")
    assert world.database.commits == commits


async def test_deleted_tickets_count_as_using_a_status(world: TicketsWorld, team: Team) -> None:
    ticket = await create(world, team.developer)
    await world.tickets.delete_ticket(team.maintainer, ticket.key)
    with pytest.raises(StatusInUseError) as raised:
        await use_triage(world, team)
    assert raised.value.extra == {"counts": {"open": 1}}
    await use_triage(world, team, open="new")
    assert world.database.ticket(ticket.id).status == "new"


async def test_migrate_moves_tickets_with_history_and_events(
    world: TicketsWorld, team: Team
) -> None:
    waiting = await create(world, team.developer)
    working = await create(world, team.developer)
    await world.tickets.transition(team.developer, working.key, "in_progress", None)
    closed = await create(world, team.developer)
    await world.tickets.transition(team.developer, closed.key, "closed", Resolution.DUPLICATE)
    before = {t.id: world.database.ticket(t.id).version for t in (waiting, working, closed)}
    names_before = len(world.database.event_names())

    new = await use_triage(world, team, open="new", in_progress="solved", closed="rejected")

    assert new.version == 2
    moved = {t.id: world.database.ticket(t.id) for t in (waiting, working, closed)}
    assert [(t.status, t.status_category, t.resolution) for t in moved.values()] == [
        ("new", TODO, None),
        ("solved", DONE, "fixed"),
        ("rejected", DONE, "duplicate"),
    ]
    assert all(moved[i].version == before[i] + 1 for i in before)
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(working.id)][
        -2:
    ] == [("status", "in_progress", "solved"), ("resolution", None, "fixed")]
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(closed.id)][
        -1:
    ] == [("status", "closed", "rejected")]
    names = world.database.event_names()[names_before:]
    assert sorted(names) == ["project.workflow_changed"] + ["ticket.status_changed"] * 3
    changed = next(e for e in world.database.events if e.name == "project.workflow_changed")
    assert changed.data["moved"] == {"open": 1, "in_progress": 1, "closed": 1}
    assert changed.data["version"] == 2
    status_events = [e for e in world.database.events[names_before:] if e.name != changed.name]
    assert {e.data["status"] for e in status_events} == {"new", "solved", "rejected"}
    # What is left of the old workflow applies no more.
    with pytest.raises(InvalidTransitionError):
        await world.tickets.transition(team.developer, waiting.key, "in_progress", None)


async def test_a_status_changing_category_recategorizes_its_tickets(
    world: TicketsWorld, team: Team
) -> None:
    ticket = await create(world, team.developer)
    await world.tickets.transition(team.developer, ticket.key, "in_progress", None)
    await world.tickets.transition(team.developer, ticket.key, "in_review", None)
    statuses = tuple(
        dataclasses.replace(s, category=DONE) if s.key == "in_review" else s
        for s in DEFAULT_WORKFLOW.statuses
    )
    await world.configuration.replace_workflow(
        team.maintainer,
        "BUG",
        dataclasses.replace(DEFAULT_WORKFLOW, statuses=statuses),
        {},
        expected_version=1,
    )
    stored = world.database.ticket(ticket.id)
    assert (stored.status, stored.status_category, stored.is_done) == ("in_review", DONE, True)
    # As a move into a done status: resolved, a new version, history and an event.
    assert (stored.resolution, stored.version) == ("fixed", ticket.version + 3)
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(ticket.id)][
        -2:
    ] == [("status_category", "in_progress", "done"), ("resolution", None, "fixed")]
    last = [e for e in world.database.events if e.subject == str(ticket.id)][-1]
    assert last.name == "ticket.status_changed"
    assert last.data["changes"]["status_category"] == {"from": "in_progress", "to": "done"}


async def test_tickets_follow_a_custom_workflow(world: TicketsWorld, team: Team) -> None:
    await use_triage(world, team)
    ticket = await create(world, team.reporter)
    assert (ticket.status, ticket.status_category) == ("new", TODO)
    offered = await world.tickets.transitions(team.developer, ticket.key)
    assert {(t.to, t.requires_resolution) for t in offered} == {
        ("triaged", False),
        ("rejected", True),
    }
    with pytest.raises(InvalidTransitionError):
        await world.tickets.transition(team.developer, ticket.key, "open", None)
    moved = await world.tickets.transition(team.developer, ticket.key, "triaged", None)
    assert (moved.status, moved.status_category) == ("triaged", DOING)
    # triaged -> solved needs a maintainer.
    assert await world.tickets.transitions(team.developer, ticket.key) == []
    with pytest.raises(ForbiddenError):
        await world.tickets.transition(team.developer, ticket.key, "solved", None)
    assert world.database.ticket(ticket.id).status == "triaged"
    solved = await world.tickets.transition(team.maintainer, ticket.key, "solved", None)
    assert (solved.status, solved.status_category, solved.resolution) == ("solved", DONE, "fixed")
    # A reporter reopens their own ticket (min_role reporter).
    reopened = await world.tickets.transition(team.reporter, ticket.key, "new", None)
    assert (reopened.status, reopened.resolution) == ("new", None)
    with pytest.raises(ResolutionRequiredError):
        await world.tickets.transition(team.reporter, ticket.key, "rejected", None)


async def test_a_ticket_starts_in_the_initial_status_with_its_category(
    world: TicketsWorld, team: Team
) -> None:
    started = Workflow(
        statuses=(
            StatusDef("backlog", "Backlog", TODO),
            StatusDef("doing", "Doing", DOING),
            StatusDef("shipped", "Shipped", DONE),
        ),
        initial="doing",
        transitions=(
            TransitionDef("doing", "shipped"),
            TransitionDef("shipped", "backlog"),
            TransitionDef("backlog", "doing"),
        ),
    )
    await world.configuration.replace_workflow(
        team.maintainer, "BUG", started, {}, expected_version=None
    )
    ticket = await create(world, team.developer)
    stored = world.database.ticket(ticket.id)
    assert (stored.status, stored.status_category) == ("doing", DOING)
    found = await world.tickets.list_tickets(
        team.developer, "BUG", ListRequest(statuses=("doing",))
    )
    assert [t.key for t in found.items] == [ticket.key]


# -- ticket types --------------------------------------------------------------------------

KINDS = TicketTypes((TicketTypeDef("defect", "Defect"), TicketTypeDef("story", "Story")))


async def test_replacing_types_with_migrate(world: TicketsWorld, team: Team) -> None:
    bug = await create(world, team.developer)
    task = await create(world, team.developer, type="task")
    other_bug = await create(world, team.developer, type="bug")
    await world.configuration.create_field(
        team.maintainer,
        "BUG",
        NewField("severity", "Severity", FieldType.TEXT, ticket_types=("bug", "feature")),
    )
    with pytest.raises(TypeInUseError) as raised:
        await world.configuration.replace_types(
            team.maintainer, "BUG", KINDS, {}, expected_version=1
        )
    assert raised.value.extra == {"counts": {"bug": 2, "task": 1}}
    with pytest.raises(PreconditionFailedError):
        await world.configuration.replace_types(
            team.maintainer, "BUG", KINDS, {"bug": "defect", "task": "story"}, expected_version=7
        )
    with pytest.raises(ForbiddenError):
        await world.configuration.replace_types(
            team.developer, "BUG", KINDS, {"bug": "defect", "task": "story"}, expected_version=1
        )

    new = await world.configuration.replace_types(
        team.maintainer, "BUG", KINDS, {"bug": "defect", "task": "story"}, expected_version=1
    )

    assert (new.keys(), new.version) == (["defect", "story"], 2)
    assert [world.database.ticket(t.id).type for t in (bug, task, other_bug)] == [
        "defect",
        "story",
        "defect",
    ]
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(task.id)] == [
        ("type", "task", "story")
    ]
    assert world.database.event_names()[-4:].count("ticket.updated") == 3
    assert world.database.event_names()[-1] == "project.ticket_types_changed"
    config = await world.configuration.configuration(team.viewer, "BUG")
    assert config.types.default == "defect"
    # The field scoped to the removed `bug` (and `feature`) follows its tickets.
    severity = config.field("severity")
    assert severity is not None
    assert severity.ticket_types == ("defect",)
    # The old types are gone for new tickets.
    with pytest.raises(InvalidTicketTypeError):
        await create(world, team.developer, type="bug")
    assert (await create(world, team.developer)).type == "defect"


# -- custom fields through the use cases ---------------------------------------------------


async def add_field(world: TicketsWorld, team: Team, new: NewField) -> FieldDef:
    return await world.configuration.create_field(team.maintainer, "BUG", new)


PRIORITY_CLASS = NewField(
    "severity",
    "Severity",
    FieldType.SELECT,
    options=(FieldOption("low", "Low"), FieldOption("high", "High"), FieldOption("crit", "Crit")),
)


async def test_creating_fields(world: TicketsWorld, team: Team) -> None:
    first = await add_field(world, team, PRIORITY_CLASS)
    second = await add_field(world, team, NewField("points", "Points", FieldType.NUMBER))
    assert (first.version, first.project_id) == (1, team.project.id)
    with pytest.raises(FieldExistsError):
        await add_field(world, team, NewField("severity", "Again", FieldType.TEXT))
    with pytest.raises(InvalidConfigurationError, match="options"):
        await add_field(world, team, NewField("kind", "Kind", FieldType.SELECT))
    with pytest.raises(InvalidConfigurationError, match="Not ticket types"):
        await add_field(world, team, NewField("x", "X", FieldType.TEXT, ticket_types=("epic",)))
    with pytest.raises(ForbiddenError):
        await world.configuration.create_field(
            team.developer, "BUG", NewField("y", "Y", FieldType.TEXT)
        )
    config = await world.configuration.configuration(team.reporter, "BUG")
    assert [f.id for f in config.fields] == [first.id, second.id]
    got = await world.configuration.get_field(team.viewer, "BUG", "points")
    assert got.id == second.id
    with pytest.raises(FieldNotFoundError):
        await world.configuration.get_field(team.viewer, "BUG", "nope")
    assert world.database.event_names() == ["project.fields_changed"] * 2


async def test_tickets_are_created_with_checked_field_values(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    await add_field(world, team, NewField("points", "Points", FieldType.NUMBER, required=True))
    with pytest.raises(InvalidFieldValuesError) as raised:
        await create(world, team.developer, fields={"severity": "mega"})
    assert {e["loc"][2] for e in raised.value.extra["errors"]} == {"severity", "points"}
    with pytest.raises(InvalidFieldValuesError):
        await create(world, team.developer, fields={"points": 1, "unknown": "x"})
    assert world.database.state.tickets == {}
    ticket = await create(world, team.developer, fields={"points": 3, "severity": "high"})
    assert world.database.ticket(ticket.id).fields == {"points": 3, "severity": "high"}
    created = next(e for e in world.database.events if e.name == "ticket.created")
    assert created.data["fields"] == {"points": 3, "severity": "high"}


async def test_updating_field_values_records_history(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    ticket = await create(world, team.developer, fields={"severity": "low"})
    updated = await world.tickets.update_ticket(
        team.developer, ticket.key, TicketPatch(fields={"severity": "high"}), expected_version=1
    )
    assert (updated.fields, updated.version) == ({"severity": "high"}, 2)
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(ticket.id)] == [
        ("fields.severity", "low", "high")
    ]
    with pytest.raises(InvalidFieldValuesError):
        await world.tickets.update_ticket(
            team.developer, ticket.key, TicketPatch(fields={"severity": 1}), expected_version=None
        )
    cleared = await world.tickets.update_ticket(
        team.developer, ticket.key, TicketPatch(fields={"severity": None}), expected_version=None
    )
    assert cleared.fields == {}
    found = await world.tickets.list_tickets(
        team.developer, "BUG", ListRequest(fields=(FieldCondition("severity", ("high",)),))
    )
    assert found.items == []


async def test_changing_the_type_drops_values_of_fields_not_applying(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(world, team, dataclasses.replace(PRIORITY_CLASS, ticket_types=("bug",)))
    ticket = await create(world, team.developer, type="bug", fields={"severity": "crit"})
    with pytest.raises(InvalidFieldValuesError):
        await create(world, team.developer, type="task", fields={"severity": "crit"})
    moved = await world.tickets.update_ticket(
        team.developer, ticket.key, TicketPatch(type="task"), expected_version=None
    )
    assert (moved.type, moved.fields) == ("task", {})
    assert [(h.field, h.to_value) for h in world.database.history_of(ticket.id)] == [
        ("type", "task"),
        ("fields.severity", None),
    ]


async def test_a_user_field_takes_members_only(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, NewField("owner", "Owner", FieldType.USER))
    with pytest.raises(InvalidFieldValuesError) as raised:
        await create(world, team.developer, fields={"owner": str(team.outsider.user_id)})
    assert raised.value.extra["errors"] == [
        {"loc": ["body", "fields", "owner"], "msg": "must be a member of the project"}
    ]
    ticket = await create(world, team.developer, fields={"owner": str(team.viewer.user_id)})
    assert ticket.fields == {"owner": str(team.viewer.user_id)}


async def test_member_left_clears_their_user_field_values(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, NewField("owner", "Owner", FieldType.USER))
    await add_field(world, team, NewField("notes", "Notes", FieldType.TEXT))
    theirs = await create(
        world, team.developer, fields={"owner": str(team.viewer.user_id), "notes": "n"}
    )
    others = await create(world, team.developer, fields={"owner": str(team.reporter.user_id)})
    await world.tickets.member_left(team.project.id, team.viewer.user_id, team.owner.user_id)
    assert world.database.ticket(theirs.id).fields == {"notes": "n"}
    assert world.database.ticket(others.id).fields == {"owner": str(team.reporter.user_id)}
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(theirs.id)] == [
        ("fields.owner", str(team.viewer.user_id), None)
    ]
    assert world.database.history_of(others.id) == []
    # The filter index forgot them too.
    found = await world.tickets.list_tickets(
        team.developer,
        "BUG",
        ListRequest(fields=(FieldCondition("owner", (str(team.viewer.user_id),)),)),
    )
    assert found.items == []
    # Running it again changes nothing.
    await world.tickets.member_left(team.project.id, team.viewer.user_id, team.owner.user_id)
    assert len(world.database.history_of(theirs.id)) == 1


async def test_removing_used_options_needs_migrate(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    await add_field(
        world,
        team,
        NewField(
            "tags",
            "Tags",
            FieldType.MULTI_SELECT,
            options=(FieldOption("a", "A"), FieldOption("b", "B"), FieldOption("c", "C")),
        ),
    )
    high = [await create(world, team.developer, fields={"severity": "high"}) for _ in range(2)]
    low = await create(world, team.developer, fields={"severity": "low"})
    kept = (FieldOption("low", "Low"), FieldOption("crit", "Crit"))
    with pytest.raises(OptionInUseError) as raised:
        await world.configuration.update_field(
            team.maintainer, "BUG", "severity", FieldPatch(options=kept), {}, expected_version=1
        )
    assert raised.value.extra == {"counts": {"high": 2}}
    with pytest.raises(InvalidConfigurationError):
        await world.configuration.update_field(
            team.maintainer,
            "BUG",
            "severity",
            FieldPatch(options=kept),
            {"high": "gone"},
            expected_version=1,
        )
    with pytest.raises(PreconditionFailedError):
        await world.configuration.update_field(
            team.maintainer,
            "BUG",
            "severity",
            FieldPatch(options=kept),
            {"high": "crit"},
            expected_version=3,
        )

    new = await world.configuration.update_field(
        team.maintainer,
        "BUG",
        "severity",
        FieldPatch(options=kept),
        {"high": "crit"},
        expected_version=1,
    )

    assert (new.option_values(), new.version) == (["low", "crit"], 2)
    assert [world.database.ticket(t.id).fields for t in high] == [{"severity": "crit"}] * 2
    assert world.database.ticket(low.id).fields == {"severity": "low"}
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(high[0].id)] == [
        ("fields.severity", "high", "crit")
    ]
    assert world.database.history_of(low.id) == []
    assert world.database.ticket(high[0].id).version == 2
    # The filter index follows the move.
    crit = await world.tickets.list_tickets(
        team.developer, "BUG", ListRequest(fields=(FieldCondition("severity", ("crit",)),))
    )
    assert sorted(t.key for t in crit.items) == sorted(t.key for t in high)

    # A multi-select value loses a dropped option (migrate to None).
    tagged = await create(world, team.developer, fields={"tags": ["a", "c"]})
    await world.configuration.update_field(
        team.maintainer,
        "BUG",
        "tags",
        FieldPatch(options=(FieldOption("a", "A"), FieldOption("b", "B"))),
        {"c": None},
        expected_version=1,
    )
    assert world.database.ticket(tagged.id).fields == {"tags": ["a"]}
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(tagged.id)] == [
        ("fields.tags", ["a", "c"], ["a"])
    ]


async def test_renaming_a_field_needs_no_migrate(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    renamed = await world.configuration.update_field(
        team.maintainer, "BUG", "severity", FieldPatch(name="Sev"), {}, expected_version=1
    )
    assert (renamed.name, renamed.version, renamed.key) == ("Sev", 2, "severity")
    unchanged = await world.configuration.update_field(
        team.maintainer, "BUG", "severity", FieldPatch(name="Sev"), {}, expected_version=2
    )
    assert unchanged.version == 2


async def test_deleting_a_field_hides_its_values_until_purged(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    await add_field(world, team, NewField("notes", "Notes", FieldType.TEXT))
    ticket = await create(world, team.developer, fields={"severity": "low", "notes": "n"})
    with pytest.raises(PreconditionFailedError):
        await world.configuration.delete_field(
            team.maintainer, "BUG", "severity", expected_version=5
        )
    await world.configuration.delete_field(team.maintainer, "BUG", "severity", expected_version=1)
    assert world.configuration.wake.is_set()
    # Hidden at once from every read, still stored.
    assert (await world.tickets.get_ticket(team.developer, ticket.key)).fields == {"notes": "n"}
    listed = await world.tickets.list_tickets(team.developer, "BUG", ListRequest())
    assert [t.fields for t in listed.items] == [{"notes": "n"}]
    assert world.database.state.tickets[ticket.id].fields["severity"] == "low"
    with pytest.raises(FieldNotFoundError):
        await world.configuration.get_field(team.viewer, "BUG", "severity")
    with pytest.raises(FieldNotFoundError):
        await world.configuration.delete_field(
            team.maintainer, "BUG", "severity", expected_version=None
        )
    # Its key is still taken until the values are purged.
    with pytest.raises(FieldExistsError):
        await add_field(world, team, NewField("severity", "Severity", FieldType.TEXT))
    assert await world.configuration.purge_deleted_fields() == 1
    assert world.database.ticket(ticket.id).fields == {"notes": "n"}
    assert world.database.state.fields.keys() == {
        f.id for f in (await world.configuration.configuration(team.viewer, "BUG")).fields
    }
    assert await world.configuration.purge_deleted_fields() == 0
    again = await add_field(world, team, NewField("severity", "Severity", FieldType.TEXT))
    assert again.type is FieldType.TEXT
    assert world.database.ticket(ticket.id).fields == {"notes": "n"}


async def test_purging_goes_in_batches(
    world: TicketsWorld, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bugtracker_tickets.application import configuration as configuration_module

    monkeypatch.setattr(configuration_module, "PURGE_BATCH", 2)
    await add_field(world, team, NewField("notes", "Notes", FieldType.TEXT))
    tickets = [await create(world, team.developer, fields={"notes": str(i)}) for i in range(3)]
    await world.configuration.delete_field(team.maintainer, "BUG", "notes", expected_version=None)
    # 2 tickets, then 1 (and the definition), then nothing left.
    assert await world.configuration.purge_deleted_fields() == 2
    assert all(world.database.ticket(t.id).fields == {} for t in tickets)
    assert world.database.state.fields == {}
    assert world.database.state.field_values == {}


async def test_list_filters_by_field_values(world: TicketsWorld, team: Team) -> None:
    await add_field(world, team, NewField("points", "Points", FieldType.NUMBER))
    await add_field(world, team, NewField("due", "Due", FieldType.DATE))
    await add_field(world, team, NewField("flag", "Flag", FieldType.BOOL))
    await add_field(
        world,
        team,
        NewField(
            "tags",
            "Tags",
            FieldType.MULTI_SELECT,
            options=(FieldOption("a", "A"), FieldOption("b", "B")),
        ),
    )
    one = await create(world, team.developer, fields={"points": 1, "due": "2026-01-10"})
    three = await create(
        world, team.developer, fields={"points": 3, "flag": True, "tags": ["a", "b"]}
    )
    five = await create(world, team.developer, fields={"points": 5.5, "tags": ["b"]})
    await create(world, team.developer)

    async def keys(*conditions: FieldCondition) -> list[str]:
        found = await world.tickets.list_tickets(
            team.developer, "BUG", ListRequest(fields=conditions, sort="created_at")
        )
        return [t.key for t in found.items]

    assert await keys(FieldCondition("points", gte="2", lte="4")) == [three.key]
    assert await keys(FieldCondition("points", gte="3")) == [three.key, five.key]
    assert await keys(FieldCondition("points", ("1", "5.5"))) == [one.key, five.key]
    assert await keys(FieldCondition("due", lte="2026-01-31")) == [one.key]
    assert await keys(FieldCondition("flag", ("true",))) == [three.key]
    assert await keys(FieldCondition("tags", ("a",))) == [three.key]
    assert await keys(FieldCondition("tags", ("b",))) == [three.key, five.key]
    assert await keys(FieldCondition("tags", ("b",)), FieldCondition("points", lte="4")) == [
        three.key
    ]


async def test_field_filters_other_projects_do_not_match(world: TicketsWorld, team: Team) -> None:
    world.project("OPS", owner=(team.maintainer, ProjectRole.OWNER))
    await add_field(world, team, NewField("points", "Points", FieldType.NUMBER))
    await world.configuration.create_field(
        team.maintainer, "OPS", NewField("points", "Points", FieldType.NUMBER)
    )
    here = await create(world, team.maintainer, fields={"points": 2})
    there = await create(world, team.maintainer, "OPS", fields={"points": 2})
    found = await world.tickets.list_tickets(
        team.maintainer, "OPS", ListRequest(fields=(FieldCondition("points", ("2",)),))
    )
    assert [t.key for t in found.items] == [there.key]
    # Across projects, the key names each project's own field.
    everywhere = await world.tickets.list_tickets(
        team.maintainer,
        None,
        ListRequest(fields=(FieldCondition("points", ("2",)),), sort="created_at"),
    )
    assert [t.key for t in everywhere.items] == [here.key, there.key]


async def test_the_fake_configuration_is_transactional(world: TicketsWorld, team: Team) -> None:
    project_id = team.project.id
    async with world.database.unit_of_work() as uow:
        await uow.configuration.save_workflow(project_id, dataclasses.replace(TRIAGE, version=2))
        assert (await uow.configuration.load(project_id)).workflow.initial == "new"
        # Left without commit: discarded.
    async with world.database.unit_of_work() as uow:
        config = await uow.configuration.load(project_id, lock="share")
        assert config.workflow == DEFAULT_WORKFLOW
        assert config.types == DEFAULT_TICKET_TYPES


async def test_the_fake_index_replaces_values_and_counts_tickets(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(world, team, PRIORITY_CLASS)
    first = await create(world, team.developer, fields={"severity": "low"})
    second = await create(world, team.developer, type="task", fields={"severity": "high"})
    async with world.database.unit_of_work() as uow:
        definition = (await uow.configuration.load(team.project.id)).fields[0]
        counts = await uow.configuration.option_counts(definition, ["low", "high", "crit"])
        assert counts == {"low": 1, "high": 1}
        await uow.configuration.index_values(first.id, [(definition, "high")])
        counts = await uow.configuration.option_counts(definition, ["low", "high"])
        assert counts == {"high": 2}
        found = await uow.configuration.tickets_where(
            team.project.id, field=definition, values=("high",), limit=10
        )
        assert {t.id for t in found} == {first.id, second.id}
        by_type = await uow.configuration.tickets_where(team.project.id, types=("task",), limit=10)
        assert [t.id for t in by_type] == [second.id]
        assert await uow.configuration.type_counts(team.project.id, ["bug", "task", "epic"]) == {
            "bug": 1,
            "task": 1,
        }
        assert await uow.configuration.status_counts(team.project.id, ["open", "done"]) == {
            "open": 2
        }


def test_only_a_done_status_can_require_a_resolution() -> None:
    statuses = (
        StatusDef("new", "New", Category.TODO, requires_resolution=True),
        StatusDef("solved", "Solved", Category.DONE, requires_resolution=True),
    )
    workflow = Workflow(statuses, "new", (TransitionDef("new", "solved"),))
    with pytest.raises(InvalidConfigurationError, match="only a done status"):
        workflow.validate()


def test_values_too_large_for_the_filter_index_are_refused() -> None:
    text = FieldDef(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        key="notes",
        name="Notes",
        type=FieldType.TEXT,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    assert text.parse("é" * 1000) == "é" * 1000  # 2,000 bytes: fits
    with pytest.raises(ValueError, match="2000 bytes"):
        text.parse("€" * 1000)  # 1,000 characters, 3,000 bytes


async def test_a_new_type_needs_the_values_its_required_fields_need(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(
        world,
        team,
        NewField("estimate", "Estimate", FieldType.NUMBER, required=True, ticket_types=("task",)),
    )
    ticket = await create(world, team.developer, type="bug")
    with pytest.raises(InvalidFieldValuesError) as refused:
        await world.tickets.update_ticket(
            team.developer, ticket.key, TicketPatch(type="task"), expected_version=None
        )
    assert refused.value.extra["errors"] == [
        {"loc": ["body", "fields", "estimate"], "msg": "is required"}
    ]
    moved = await world.tickets.update_ticket(
        team.developer,
        ticket.key,
        TicketPatch(type="task", fields={"estimate": 3}),
        expected_version=None,
    )
    assert (moved.type, moved.fields) == ("task", {"estimate": 3})


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "x"])
async def test_a_number_filter_takes_finite_numbers_only(
    world: TicketsWorld, team: Team, raw: str
) -> None:
    await add_field(world, team, NewField("points", "Points", FieldType.NUMBER))
    with pytest.raises(InvalidFilterError):
        await world.tickets.list_tickets(
            team.developer,
            team.project.key,
            ListRequest(fields=(FieldCondition("points", gte=raw),)),
        )


async def test_narrowing_a_fields_types_drops_the_values_it_no_longer_applies_to(
    world: TicketsWorld, team: Team
) -> None:
    await add_field(world, team, NewField("note", "Note", FieldType.TEXT))
    task = await create(world, team.developer, type="task", fields={"note": "x"})
    bug = await create(world, team.developer, type="bug", fields={"note": "y"})
    await world.configuration.update_field(
        team.maintainer,
        "BUG",
        "note",
        FieldPatch(ticket_types=("bug",)),
        {},
        expected_version=None,
    )
    assert (await world.tickets.get_ticket(team.developer, task.key)).fields == {}
    assert (await world.tickets.get_ticket(team.developer, bug.key)).fields == {"note": "y"}
    assert [(h.field, h.from_value, h.to_value) for h in world.database.history_of(task.id)] == [
        ("fields.note", "x", None)
    ]
    found = await world.tickets.list_tickets(
        team.developer, "BUG", ListRequest(fields=(FieldCondition("note", equals=("x",)),))
    )
    assert found.items == []
