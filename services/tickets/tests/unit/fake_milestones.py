"""In-memory fake of the MilestoneRepository port (tests only).

Milestones live in the unit of work's private copy of the state (`TicketsState.
milestones`), as every fake's data does. A milestone's progress (`total`, `done`) is the
database's, kept by a trigger on tickets (migration 0005): this fake does not keep it,
it only never overwrites what is stored (as `SqlMilestoneRepository.update` writes
neither count); the integration tests check progress on PostgreSQL.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from bugtracker_tickets.domain.errors import MilestoneExistsError
from bugtracker_tickets.domain.planning import Milestone, MilestoneState

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork, TicketsState


def _sort_key(milestone: Milestone) -> tuple[date, str, uuid.UUID]:
    """The list order: due date (none last), name, id (as the `due_sort` column)."""
    return milestone.due_date or date.max, milestone.name, milestone.id


class FakeMilestoneRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> TicketsState:
        return self._uow.state

    def _check_name(self, milestone: Milestone) -> None:
        """The unique index on (project_id, lower(name)) of live milestones."""
        if milestone.deleted_at is not None:
            return
        for other in self._state.milestones.values():
            if (
                other.id != milestone.id
                and other.deleted_at is None
                and other.project_id == milestone.project_id
                and other.name.lower() == milestone.name.lower()
            ):
                raise MilestoneExistsError()

    async def add(self, milestone: Milestone) -> None:
        if milestone.id in self._state.milestones:
            raise ValueError(f"duplicate milestone id {milestone.id}")
        self._check_name(milestone)
        self._state.milestones[milestone.id] = copy.deepcopy(milestone)

    async def get(self, milestone_id: uuid.UUID, *, for_update: bool = False) -> Milestone | None:
        milestone = self._state.milestones.get(milestone_id)
        return copy.deepcopy(milestone) if milestone else None

    async def update(self, milestone: Milestone) -> None:
        stored = self._state.milestones.get(milestone.id)
        if stored is None:
            return  # an UPDATE that matches no row
        self._check_name(milestone)
        updated = copy.deepcopy(milestone)
        # Columns an update never writes: the identity, the creation, the counts.
        for fixed in ("id", "project_id", "created_at", "total", "done"):
            setattr(updated, fixed, getattr(stored, fixed))
        self._state.milestones[milestone.id] = updated

    async def deleted_with_tickets(self, *, limit: int) -> list[uuid.UUID]:
        named = {t.milestone_id for t in self._state.tickets.values()}
        deleted = sorted(
            (m for m in self._state.milestones.values() if m.deleted_at is not None),
            key=lambda m: (m.deleted_at, m.id),
        )
        return [m.id for m in deleted if m.id in named][:limit]

    async def purge_cleared(self) -> int:
        named = {t.milestone_id for t in self._state.tickets.values()}
        cleared = [
            m.id
            for m in self._state.milestones.values()
            if m.deleted_at is not None and m.id not in named
        ]
        for milestone_id in cleared:
            del self._state.milestones[milestone_id]
        return len(cleared)

    async def named(
        self, project_ids: Sequence[uuid.UUID], names: Sequence[str]
    ) -> dict[str, list[uuid.UUID]]:
        wanted = {name.lower() for name in names}
        found: dict[str, list[uuid.UUID]] = {}
        for m in self._state.milestones.values():
            if m.project_id in project_ids and m.deleted_at is None and m.name.lower() in wanted:
                found.setdefault(m.name.lower(), []).append(m.id)
        return found

    # Last: below it, `list` in annotations would name this method, not the builtin.
    async def list(
        self,
        project_id: uuid.UUID,
        *,
        states: tuple[MilestoneState, ...],
        after: list[Any] | None,
        limit: int,
    ) -> tuple[list[Milestone], list[Any] | None]:
        found = sorted(
            (
                m
                for m in self._state.milestones.values()
                if m.project_id == project_id and m.deleted_at is None and m.state in states
            ),
            key=_sort_key,
        )
        if after is not None:
            boundary = (date.fromisoformat(str(after[0])), str(after[1]), uuid.UUID(str(after[2])))
            found = [m for m in found if _sort_key(m) > boundary]
        page = copy.deepcopy(found[:limit])
        if len(found) <= limit:
            return page, None
        due, name, last_id = _sort_key(page[-1])
        return page, [due.isoformat(), name, str(last_id)]
