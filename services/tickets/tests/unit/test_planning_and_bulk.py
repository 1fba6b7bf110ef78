"""The planning rules (parents, finishing with dependencies, unblocking) and bulk changes
through the real use cases on in-memory fakes (fakes.py): no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from bugtracker_shared.tokens import Principal
from bugtracker_tickets.application.bulk import BulkChange
from bugtracker_tickets.application.use_cases import NewTicket
from bugtracker_tickets.domain.errors import (
    BulkRejectedError,
    ForbiddenError,
    InvalidParentError,
    UnfinishedDependenciesError,
)
from bugtracker_tickets.domain.planning import Relation, RelationType
from bugtracker_tickets.domain.tickets import Priority, Ticket, TicketPatch
from bugtracker_tickets.domain.workflow import Resolution

from services.tickets.tests.unit.fakes import Team, TicketsWorld


async def create(world: TicketsWorld, who: Principal, **fields: object) -> Ticket:
    return (await world.tickets.create_ticket(who, "BUG", NewTicket(title="t", **fields))).ticket


def blocks(world: TicketsWorld, blocker: Ticket, blocked: Ticket) -> None:
    relation = Relation.between(
        blocker.id,
        RelationType.BLOCKS,
        blocked.id,
        created_at=datetime.now(UTC),
        created_by=uuid.uuid4(),
    )
    world.database.state.relations[relation.id] = relation


async def test_a_parent_must_not_make_a_cycle_or_a_sixth_level(
    world: TicketsWorld, team: Team
) -> None:
    chain = [await create(world, team.reporter)]
    for _ in range(4):
        chain.append(await create(world, team.reporter, parent_id=chain[-1].id))
    assert [world.database.ticket(t.id).parent_id for t in chain[1:]] == [t.id for t in chain[:-1]]
    with pytest.raises(InvalidParentError, match="5 levels"):
        await create(world, team.reporter, parent_id=chain[-1].id)
    with pytest.raises(InvalidParentError, match="cycle"):
        await world.tickets.update_ticket(
            team.developer, chain[0].key, TicketPatch(parent_id=chain[3].id), expected_version=None
        )
    with pytest.raises(InvalidParentError, match="own parent"):
        await world.tickets.update_ticket(
            team.developer, chain[1].key, TicketPatch(parent_id=chain[1].id), expected_version=None
        )
    assert world.database.ticket(chain[0].id).parent_id is None


async def test_finishing_waits_for_blockers_and_children_and_announces_the_unblocked(
    world: TicketsWorld, team: Team
) -> None:
    blocker = await create(world, team.reporter)
    blocked = await create(world, team.reporter, assignee_id=team.developer.user_id)
    child = await create(world, team.reporter, parent_id=blocked.id)
    blocks(world, blocker, blocked)

    with pytest.raises(UnfinishedDependenciesError) as refused:
        await world.tickets.transition(team.developer, blocked.key, "closed", Resolution.INVALID)
    assert [b["key"] for b in refused.value.extra["blockers"]] == [blocker.key]
    assert [c["key"] for c in refused.value.extra["children"]] == [child.key]
    assert world.database.ticket(blocked.id).status == "open"

    await world.tickets.transition(team.developer, child.key, "closed", Resolution.INVALID)
    await world.tickets.transition(team.developer, blocker.key, "closed", Resolution.INVALID)
    unblocked = [e for e in world.database.events if e.type.endswith("ticket.unblocked.v1")]
    assert [(e.subject, e.data["blocker"]["key"]) for e in unblocked] == [
        (str(blocked.id), blocker.key)
    ]
    # Reopening and finishing the blocker again announces nothing new: nothing is blocked.
    await world.tickets.transition(team.developer, blocked.key, "closed", Resolution.FIXED)
    assert world.database.ticket(blocked.id).status == "closed"


async def test_bulk_changes_all_tickets_or_none(world: TicketsWorld, team: Team) -> None:
    tickets = [await create(world, team.reporter) for _ in range(3)]
    done = await create(world, team.reporter)
    await world.tickets.transition(team.developer, done.key, "closed", Resolution.INVALID)
    commits = world.database.commits

    with pytest.raises(BulkRejectedError) as rejected:
        await world.bulk.bulk_change(
            team.developer,
            "BUG",
            [t.key for t in tickets] + [done.key, "BUG-99"],
            BulkChange(status="in_progress", priority=Priority.HIGH),
        )
    assert [(e["ticket"], e["code"]) for e in rejected.value.extra["errors"]] == [
        (done.key, "invalid_transition"),
        ("BUG-99", "not_found"),
    ]
    assert world.database.commits == commits
    assert {world.database.ticket(t.id).priority for t in tickets} == {Priority.MEDIUM}

    changed = await world.bulk.bulk_change(
        team.developer,
        "BUG",
        [t.key for t in reversed(tickets)],
        BulkChange(priority=Priority.HIGH, assignee_id=team.viewer.user_id),
    )
    assert [t.key for t in changed] == [t.key for t in reversed(tickets)]
    assert world.database.commits == commits + 1
    for ticket in tickets:
        stored = world.database.ticket(ticket.id)
        assert (stored.priority, stored.assignee_id, stored.version) == (
            Priority.HIGH,
            team.viewer.user_id,
            2,
        )
        assert {h.field for h in world.database.history_of(ticket.id)} == {
            "priority",
            "assignee_id",
        }
        assert team.viewer.user_id in world.database.watchers_of(ticket.id)
    assigned = [e for e in world.database.events if e.type.endswith("ticket.assigned.v1")]
    assert [e.subject for e in assigned] == [str(t.id) for t in reversed(tickets)]
    assert {e.data["bulk"]["size"] for e in assigned} == {3}


@pytest.mark.parametrize("who", ["reporter", "viewer"])
async def test_bulk_needs_a_developer(world: TicketsWorld, team: Team, who: str) -> None:
    ticket = await create(world, team.reporter)
    with pytest.raises(ForbiddenError):
        await world.bulk.bulk_change(
            getattr(team, who), "BUG", [ticket.key], BulkChange(priority=Priority.LOW)
        )
