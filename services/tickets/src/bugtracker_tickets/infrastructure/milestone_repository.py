"""The MilestoneRepository port on PostgreSQL.

`total` and `done` are the database's: a trigger on tickets (migration 0005) keeps them
in the transaction of every ticket write, so they are read here and never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.rows import Columns
from sqlalchemy import (
    ColumnElement,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.domain.errors import MilestoneExistsError
from bugtracker_tickets.domain.planning import Milestone, MilestoneState
from bugtracker_tickets.infrastructure.tables import milestones, tickets

MILESTONES = Columns(Milestone, milestones, load={"state": MilestoneState}, unmapped=("due_sort",))
# What an update writes: neither the identity nor the creation, nor the counts, which
# the trigger keeps (writing a stale copy back would undo its work).
_CHANGES = MILESTONES.without("id", "project_id", "created_at", "total", "done")
_COLUMNS = list(MILESTONES.columns)
UNIQUE_NAME = "ux_milestones_project_name"


def _names_unique_index(exc: IntegrityError) -> bool:
    """Whether the violation is of the unique live name index (asyncpg's
    UniqueViolationError, wrapped by SQLAlchemy's adapter)."""
    seen: BaseException | None = exc.orig
    while seen is not None:
        if getattr(seen, "constraint_name", None) == UNIQUE_NAME:
            return True
        seen = seen.__cause__
    return False


def _keyset(after: list[Any]) -> ColumnElement[bool]:
    """Rows after the cursor's (due date or `infinity`, name, id)."""
    try:
        due, name, last_id = after
        boundary = tuple_(
            literal(date.fromisoformat(str(due))),
            literal(str(name)),
            literal(uuid.UUID(str(last_id))),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidCursorError("The cursor is not valid.") from exc
    m = milestones.c
    return tuple_(m.due_sort, m.name, m.id) > boundary


class SqlMilestoneRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, milestone: Milestone) -> None:
        await self._unique_name(insert(milestones).values(MILESTONES.values(milestone)))

    async def update(self, milestone: Milestone) -> None:
        await self._unique_name(
            update(milestones)
            .where(milestones.c.id == milestone.id)
            .values(_CHANGES.values(milestone))
        )

    async def _unique_name(self, statement: Any) -> None:
        """Run the write in a savepoint: a name taken by another live milestone of the
        project (a race past any check included) raises MilestoneExistsError and leaves
        the unit of work usable."""
        try:
            async with self._session.begin_nested():
                await self._session.execute(statement)
        except IntegrityError as exc:
            if _names_unique_index(exc):
                raise MilestoneExistsError() from exc
            raise

    async def get(self, milestone_id: uuid.UUID, *, for_update: bool = False) -> Milestone | None:
        query = select(*_COLUMNS).where(milestones.c.id == milestone_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return MILESTONES.from_row(row) if row else None

    async def deleted_with_tickets(self, *, limit: int) -> list[uuid.UUID]:
        m = milestones.c
        named = exists().where(tickets.c.milestone_id == m.id)
        rows = await self._session.scalars(
            select(m.id)
            .where(m.deleted_at.is_not(None), named)
            .order_by(m.deleted_at, m.id)
            .limit(limit)
        )
        return list(rows)

    async def purge_cleared(self) -> int:
        gone = milestones.alias("gone")
        named = exists().where(tickets.c.milestone_id == gone.c.id)
        # Rows locked by a ticket write naming them (the foreign key's share lock, the
        # progress trigger's update) are skipped: the next run purges them.
        cleared = (
            select(gone.c.id)
            .where(gone.c.deleted_at.is_not(None), ~named)
            .with_for_update(of=gone, skip_locked=True)
        )
        result = await self._session.execute(
            delete(milestones).where(milestones.c.id.in_(cleared)).returning(milestones.c.id)
        )
        return len(result.all())

    async def named(
        self, project_ids: Sequence[uuid.UUID], names: Sequence[str]
    ) -> dict[str, list[uuid.UUID]]:
        m = milestones.c
        # Served by the unique index on (project_id, lower(name)) of live milestones.
        rows = await self._session.execute(
            select(func.lower(m.name), m.id).where(
                m.project_id.in_(list(project_ids)),
                func.lower(m.name).in_([name.lower() for name in names]),
                m.deleted_at.is_(None),
            )
        )
        found: dict[str, list[uuid.UUID]] = {}
        for name, milestone_id in rows:
            found.setdefault(name, []).append(milestone_id)
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
        m = milestones.c
        query = (
            select(*_COLUMNS, m.due_sort)
            .where(
                m.project_id == project_id,
                m.deleted_at.is_(None),
                m.state.in_([state.value for state in states]),
            )
            .order_by(m.due_sort, m.name, m.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(_keyset(after))
        rows = (await self._session.execute(query)).mappings().all()
        found = [MILESTONES.from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return found, None
        last = rows[limit - 1]
        return found, [last["due_sort"].isoformat(), last["name"], str(last["id"])]
