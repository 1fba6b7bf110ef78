"""The fakes keep the unit of work's contract: nothing is visible before commit, and
leaving the block without committing discards everything."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bugtracker_shared.permissions import ProjectRole
from bugtracker_tickets.application.ports import IdempotencyClaim
from bugtracker_tickets.domain.tickets import Priority, Ticket

from services.tickets.tests.unit.fakes import FakeTicketsDatabase, TicketsWorld


def draft(project_id: uuid.UUID) -> Ticket:
    now = datetime.now(UTC)
    return Ticket(
        id=uuid.uuid4(),
        project_id=project_id,
        key="",
        number=0,
        title="t",
        description="",
        type="bug",
        priority=Priority.LOW,
        status="open",
        reporter_id=uuid.uuid4(),
        created_at=now,
        updated_at=now,
    )


async def test_changes_are_visible_only_after_commit() -> None:
    database = FakeTicketsDatabase()
    ticket = draft(uuid.uuid4())
    async with database.unit_of_work() as uow:
        assert await uow.tickets.create(ticket, "BUG", [ticket.reporter_id], []) == 1
        assert await uow.tickets.get(ticket.id) is not None
        assert database.state.tickets == {}
        async with database.unit_of_work() as other:
            assert await other.tickets.get(ticket.id) is None
        await uow.commit()
    assert database.ticket(ticket.id).key == "BUG-1"
    assert database.watchers_of(ticket.id) == {ticket.reporter_id}
    assert database.commits == 1


async def test_leaving_without_commit_discards_everything() -> None:
    database = FakeTicketsDatabase()
    ticket = draft(uuid.uuid4())

    async def fail() -> None:
        async with database.unit_of_work() as uow:
            await uow.tickets.create(ticket, "BUG", [], [])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail()
    async with database.unit_of_work() as uow:
        assert await uow.tickets.get(ticket.id) is None
        # The counter was rolled back too: numbers stay gapless.
        assert await uow.tickets.create(draft(ticket.project_id), "BUG", [], []) == 1
    assert database.state.tickets == {}
    assert (database.commits, database.rollbacks) == (0, 2)


async def test_loaded_objects_are_copies_until_written_back() -> None:
    database = FakeTicketsDatabase()
    ticket = draft(uuid.uuid4())
    async with database.unit_of_work() as uow:
        await uow.tickets.create(ticket, "BUG", [], [])
        await uow.commit()
    async with database.unit_of_work() as uow:
        loaded = await uow.tickets.get(ticket.id)
        assert loaded is not None
        loaded.title = "changed, never written"
        assert (await uow.tickets.get(ticket.id)) == database.ticket(ticket.id)
        await uow.commit()
    assert database.ticket(ticket.id).title == "t"


async def test_a_unit_of_work_commits_at_most_once_and_only_inside_its_block() -> None:
    database = FakeTicketsDatabase()
    uow = database.unit_of_work()
    with pytest.raises(RuntimeError, match="outside"):
        await uow.commit()
    async with uow:
        await uow.commit()
        with pytest.raises(RuntimeError, match="twice"):
            await uow.commit()


async def test_idempotency_claims_expire_after_a_day() -> None:
    now = datetime.now(UTC)
    clock = [now]
    database = FakeTicketsDatabase(clock=lambda: clock[0])
    claim = IdempotencyClaim(uuid.uuid4(), "scope", "key", "fingerprint")
    async with database.unit_of_work() as uow:
        assert await uow.idempotency.claim(claim) is None
        again = IdempotencyClaim(claim.user_id, "scope", "key", "other")
        assert await uow.idempotency.claim(again) == claim
        clock[0] = now + timedelta(hours=25)
        assert await uow.idempotency.claim(again) is None


async def test_the_directory_gives_outsiders_nothing_and_admins_everything(
    world: TicketsWorld,
) -> None:
    member, outsider, admin = world.user(), world.user(), world.user(admin=True)
    project = world.project("ABC", m=(member, ProjectRole.VIEWER))
    assert await world.projects.access("ABC", outsider) is None
    viewer = await world.projects.access(str(project.id), member)
    assert viewer is not None
    assert viewer.role == "viewer"
    admins = await world.projects.access("ABC", admin)
    assert admins is not None
    assert admins.role is None
    assert len(admins.permissions) > len(viewer.permissions)
