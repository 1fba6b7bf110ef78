"""Relations between tickets through the in-memory fakes: RelationUseCases with the real
domain rules (planning.py), FakeRelationRepository for the storage."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, datetime

import pytest
from bugtracker_shared.permissions import ProjectRole
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.application import relations as relations_module
from bugtracker_tickets.application.relations import RelationUseCases
from bugtracker_tickets.application.use_cases import NewTicket
from bugtracker_tickets.domain.configuration import DEFAULT_WORKFLOW
from bugtracker_tickets.domain.errors import (
    ForbiddenError,
    InvalidRelationError,
    ProjectArchivedError,
    RelationCycleError,
    RelationExistsError,
    RelationNotFoundError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.planning import Relation, RelationType
from bugtracker_tickets.domain.tickets import Ticket

from services.tickets.tests.unit.fakes import Team, TicketsWorld

BLOCKS, BLOCKED_BY = RelationType.BLOCKS, RelationType.BLOCKED_BY


@pytest.fixture
def relations(world: TicketsWorld) -> RelationUseCases:
    return RelationUseCases(uow=world.database.unit_of_work, tickets=world.tickets)


async def create(world: TicketsWorld, who: Principal, project: str = "BUG") -> Ticket:
    return (await world.tickets.create_ticket(who, project, NewTicket("Login fails"))).ticket


async def several(world: TicketsWorld, who: Principal, count: int) -> list[Ticket]:
    return [await create(world, who) for _ in range(count)]


async def seen(
    relations: RelationUseCases, who: Principal, ticket: Ticket
) -> list[tuple[str, str]]:
    """The ticket's relations as `who` lists them: (type, other key)."""
    page = await relations.list_relations(who, ticket.key, limit=100, cursor=None)
    return [(r.type.value, r.ticket.key) for r in page.items]


def link(world: TicketsWorld, source: Ticket, type: RelationType, target: Ticket) -> None:
    """A stored relation, written straight into the committed state (for long chains)."""
    relation = Relation.between(
        source.id, type, target.id, created_at=datetime.now(UTC), created_by=uuid.uuid4()
    )
    world.database.state.relations[relation.id] = relation


# -- create and list ----------------------------------------------------------------------


async def test_a_relation_is_stored_once_and_seen_from_both_sides_with_the_inverse_type(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    related = await relations.relate(team.developer, a.key, BLOCKS, str(b.id))

    assert related.ticket_id == a.id
    assert (related.relation.type, related.relation.ticket.key) == (BLOCKS, "BUG-2")
    assert await seen(relations, team.viewer, a) == [("blocks", "BUG-2")]
    assert await seen(relations, team.viewer, b) == [("blocked_by", "BUG-1")]
    (stored,) = world.database.state.relations.values()
    assert (stored.source_id, stored.target_id, stored.type) == (a.id, b.id, BLOCKS)


async def test_blocked_by_and_duplicated_by_are_stored_as_their_inverse(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b, c = await several(world, team.developer, 3)
    await relations.relate(team.developer, a.key, BLOCKED_BY, b.key)
    await relations.relate(team.developer, a.key, RelationType.DUPLICATED_BY, c.key)

    stored = {(r.source_id, r.target_id, r.type) for r in world.database.state.relations.values()}
    assert stored == {(b.id, a.id, BLOCKS), (c.id, a.id, RelationType.DUPLICATES)}
    assert await seen(relations, team.viewer, a) == [
        ("blocked_by", "BUG-2"),
        ("duplicated_by", "BUG-3"),
    ]
    assert await seen(relations, team.viewer, c) == [("duplicates", "BUG-1")]


async def test_relating_writes_one_event_per_side_and_leaves_the_versions_alone(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    before = len(world.database.events)
    related = await relations.relate(team.developer, a.key, BLOCKS, b.key)

    events = world.database.events[before:]
    assert world.database.event_names()[before:] == ["ticket.related", "ticket.related"]
    by_subject = {e.subject: e for e in events}
    assert by_subject[str(a.id)].data["relation"] == {
        "id": str(related.relation.id),
        "type": "blocks",
        "ticket": {"id": str(b.id), "key": "BUG-2", "project_id": str(team.project.id)},
    }
    assert by_subject[str(b.id)].data["relation"]["type"] == "blocked_by"
    assert by_subject[str(b.id)].data["relation"]["ticket"]["key"] == "BUG-1"
    assert [e.sequence for e in events] == [1, 1]
    assert [e.data["version"] for e in events] == [1, 1]
    assert world.database.ticket(a.id).version == world.database.ticket(b.id).version == 1

    await relations.unrelate(team.developer, b.key, related.relation.id)
    unrelated = world.database.events[before + 2 :]
    assert world.database.event_names()[before + 2 :] == ["ticket.unrelated"] * 2
    assert [(e.subject, e.data["relation"]["type"]) for e in unrelated] == [
        (str(a.id), "blocks"),
        (str(b.id), "blocked_by"),
    ]
    assert world.database.state.relations == {}
    assert await seen(relations, team.viewer, a) == []
    assert world.database.ticket(a.id).version == 1


async def test_the_list_is_oldest_first_and_paginated(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a = await create(world, team.developer)
    others = [await create(world, team.developer) for _ in range(3)]
    for other in others:
        await relations.relate(team.developer, a.key, RelationType.RELATES_TO, other.key)

    first = await relations.list_relations(team.viewer, a.key, limit=2, cursor=None)
    assert [r.ticket.key for r in first.items] == ["BUG-2", "BUG-3"]
    assert first.next_cursor is not None
    rest = await relations.list_relations(team.viewer, a.key, limit=2, cursor=first.next_cursor)
    assert [r.ticket.key for r in rest.items] == ["BUG-4"]
    assert rest.next_cursor is None
    assert {r.type for r in first.items + rest.items} == {RelationType.RELATES_TO}


# -- refusals -----------------------------------------------------------------------------


async def test_a_ticket_cannot_be_related_to_itself(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a = await create(world, team.developer)
    with pytest.raises(InvalidRelationError):
        await relations.relate(team.developer, a.key, BLOCKS, str(a.id))


@pytest.mark.parametrize(
    ("first", "second", "error"),
    [
        (BLOCKS, BLOCKS, RelationExistsError),
        (BLOCKS, BLOCKED_BY, RelationCycleError),  # b blocks a: the two would block each other
        (RelationType.BLOCKED_BY, BLOCKS, RelationCycleError),
        (RelationType.DUPLICATES, RelationType.DUPLICATES, RelationExistsError),
        (RelationType.DUPLICATES, RelationType.DUPLICATED_BY, RelationExistsError),
        (RelationType.RELATES_TO, RelationType.RELATES_TO, RelationExistsError),
    ],
)
async def test_the_same_relation_again_is_refused(
    world: TicketsWorld,
    team: Team,
    relations: RelationUseCases,
    first: RelationType,
    second: RelationType,
    error: type[Exception],
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    await relations.relate(team.developer, a.key, first, b.key)
    commits = world.database.commits
    # The second from b's side: "again" means either way round.
    reverse = {BLOCKS: BLOCKED_BY, BLOCKED_BY: BLOCKS}
    with pytest.raises(error):
        await relations.relate(team.developer, b.key, reverse.get(second, second), a.key)
    assert world.database.commits == commits
    assert len(world.database.state.relations) == 1


async def test_blocks_and_relates_to_between_the_same_tickets_may_coexist(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    await relations.relate(team.developer, a.key, BLOCKS, b.key)
    await relations.relate(team.developer, b.key, RelationType.RELATES_TO, a.key)
    await relations.relate(team.developer, b.key, RelationType.DUPLICATES, a.key)
    assert await seen(relations, team.viewer, a) == [
        ("blocks", "BUG-2"),
        ("relates_to", "BUG-2"),
        ("duplicated_by", "BUG-2"),
    ]


async def test_a_cycle_of_three_is_refused(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b, c = await several(world, team.developer, 3)
    await relations.relate(team.developer, a.key, BLOCKS, b.key)
    await relations.relate(team.developer, b.key, BLOCKS, c.key)
    with pytest.raises(RelationCycleError):
        await relations.relate(team.developer, c.key, BLOCKS, a.key)
    with pytest.raises(RelationCycleError):
        await relations.relate(team.developer, a.key, BLOCKED_BY, c.key)
    # Not a cycle: a already blocks c through b, and may block it directly too.
    await relations.relate(team.developer, a.key, BLOCKS, c.key)
    assert len(world.database.state.relations) == 3


async def test_a_chain_longer_than_the_bound_cannot_be_checked_and_is_refused(
    world: TicketsWorld, team: Team, relations: RelationUseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small bound keeps the fake's chain short; the real bound is tested on PostgreSQL.
    bound = 8
    monkeypatch.setattr(relations_module, "MAX_BLOCKS_DEPTH", bound)
    chain = [await create(world, team.developer) for _ in range(bound + 2)]
    for blocker, blocked in itertools.pairwise(chain[1:]):
        link(world, blocker, BLOCKS, blocked)  # chain[1] .. chain[-1]: `bound` steps
    x = await create(world, team.developer)

    # Exactly the bound: the walk sees the chain's end, no cycle.
    await relations.relate(team.developer, x.key, BLOCKS, chain[1].key)
    # One step more, from chain[0]: the chain goes on past the bound.
    link(world, chain[0], BLOCKS, chain[1])
    with pytest.raises(InvalidRelationError, match=str(bound)):
        await relations.relate(team.developer, x.key, BLOCKS, chain[0].key)
    # The end of the chain blocking its start is a cycle the walk cannot see either.
    with pytest.raises(InvalidRelationError):
        await relations.relate(team.developer, chain[-1].key, BLOCKS, chain[0].key)
    # Near the start, the cycle is found.
    with pytest.raises(RelationCycleError):
        await relations.relate(team.developer, chain[2].key, BLOCKS, chain[0].key)


# -- who may -----------------------------------------------------------------------------


async def test_developers_and_reporters_on_their_own_tickets_may_relate(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    mine = await create(world, team.reporter)
    theirs = await create(world, team.developer)
    await relations.relate(team.reporter, mine.key, RelationType.RELATES_TO, theirs.key)
    with pytest.raises(ForbiddenError):
        await relations.relate(team.reporter, theirs.key, BLOCKS, mine.key)
    with pytest.raises(ForbiddenError):
        await relations.relate(team.viewer, mine.key, BLOCKS, theirs.key)
    with pytest.raises(TicketNotFoundError):
        await relations.relate(team.outsider, mine.key, BLOCKS, theirs.key)
    await relations.relate(team.developer, theirs.key, BLOCKS, mine.key)

    related = await relations.list_relations(team.viewer, mine.key, limit=10, cursor=None)
    relation_id = related.items[0].id
    with pytest.raises(ForbiddenError):
        await relations.unrelate(team.viewer, mine.key, relation_id)
    with pytest.raises(ForbiddenError):
        await relations.unrelate(team.reporter, theirs.key, relation_id)
    await relations.unrelate(team.reporter, mine.key, relation_id)
    with pytest.raises(TicketNotFoundError):
        await relations.list_relations(team.outsider, mine.key, limit=10, cursor=None)


async def test_an_archived_project_is_read_only(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    team.project.archived = True
    with pytest.raises(ProjectArchivedError):
        await relations.relate(team.developer, a.key, BLOCKS, b.key)


async def test_unrelating_a_relation_of_another_ticket_is_not_found(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b, c = await several(world, team.developer, 3)
    related = await relations.relate(team.developer, a.key, BLOCKS, b.key)
    with pytest.raises(RelationNotFoundError):
        await relations.unrelate(team.developer, c.key, related.relation.id)
    with pytest.raises(RelationNotFoundError):
        await relations.unrelate(team.developer, a.key, uuid.uuid4())
    assert len(world.database.state.relations) == 1


# -- across projects, deleted tickets -------------------------------------------------------


async def test_across_projects_only_when_the_caller_sees_both(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    ops = world.project("OPS", dev=(team.developer, ProjectRole.DEVELOPER))
    a = await create(world, team.reporter)
    elsewhere = await create(world, team.developer, "OPS")
    with pytest.raises(TicketNotFoundError):  # the reporter's own ticket, OPS unseen
        await relations.relate(team.reporter, a.key, BLOCKS, elsewhere.key)
    await relations.relate(team.developer, a.key, BLOCKS, elsewhere.key)

    assert await seen(relations, team.developer, a) == [("blocks", "OPS-1")]
    assert await seen(relations, team.viewer, a) == []  # no access to OPS
    ops.members[team.viewer.user_id] = ProjectRole.VIEWER
    assert await seen(relations, team.viewer, a) == [("blocks", "OPS-1")]
    del ops.members[team.viewer.user_id]
    assert await seen(relations, team.viewer, a) == []

    (relation_id,) = world.database.state.relations
    with pytest.raises(RelationNotFoundError):  # a relation they cannot see
        await relations.unrelate(team.maintainer, a.key, relation_id)


async def test_a_deleted_ticket_hides_its_relations_until_restored(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b = await create(world, team.developer), await create(world, team.developer)
    await relations.relate(team.developer, a.key, BLOCKS, b.key)
    await world.tickets.delete_ticket(team.maintainer, b.key)

    assert await seen(relations, team.viewer, a) == []
    with pytest.raises(TicketNotFoundError):
        await relations.list_relations(team.viewer, b.key, limit=10, cursor=None)
    with pytest.raises(TicketNotFoundError):
        await relations.relate(team.developer, a.key, RelationType.RELATES_TO, b.key)
    assert len(world.database.state.relations) == 1

    await world.tickets.restore_ticket(team.maintainer, b.key)
    assert await seen(relations, team.viewer, a) == [("blocks", "BUG-2")]


# -- the blockers the planning rules ask for -----------------------------------------------


def set_status(world: TicketsWorld, ticket: Ticket, status: str) -> None:
    stored = world.database.state.tickets[ticket.id]
    world.database.state.tickets[ticket.id] = dataclasses.replace(
        stored, status=status, status_category=DEFAULT_WORKFLOW.category(status)
    )


async def test_unfinished_blockers_and_unblocked_by_in_the_fake(
    world: TicketsWorld, team: Team, relations: RelationUseCases
) -> None:
    a, b, c, d = await several(world, team.developer, 4)
    await relations.relate(team.developer, a.key, BLOCKS, c.key)
    await relations.relate(team.developer, b.key, BLOCKS, c.key)
    await relations.relate(team.developer, a.key, BLOCKS, d.key)
    uow = world.database.unit_of_work()
    async with uow:
        assert [r.key for r in await uow.relations.unfinished_blockers(c.id, limit=10)] == [
            "BUG-1",
            "BUG-2",
        ]
        # c is still blocked by b; d only by a.
        assert [t.key for t in await uow.relations.unblocked_by(a.id)] == ["BUG-4"]
    set_status(world, b, "done")
    async with world.database.unit_of_work() as uow:
        assert [r.key for r in await uow.relations.unfinished_blockers(c.id, limit=10)] == ["BUG-1"]
        assert sorted(t.key for t in await uow.relations.unblocked_by(a.id)) == ["BUG-3", "BUG-4"]
        assert await uow.relations.unfinished_blockers(c.id, limit=0) == []
