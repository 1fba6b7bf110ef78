"""In-memory fake of the ConfigurationRepository port (tests only).

A project's workflow and ticket types live in the unit of work's private copy of the
state (`TicketsState.workflows`, `.ticket_types`: none stored means the defaults), its
custom fields in `TicketsState.fields` (deleted ones too, until purged) and the filter
index of ticket values in `TicketsState.field_values`, each as
SqlConfigurationRepository keeps them. One transaction runs at a time here, so `load`
ignores its lock. Tickets handed out hide the values of deleted fields, as the SQL
`LIVE_FIELDS` does (`live_ticket`).
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from bugtracker_tickets.application.ports import ConfigLock, FieldFilter, TrackerConfig
from bugtracker_tickets.domain.configuration import (
    DEFAULT_TICKET_TYPES,
    DEFAULT_WORKFLOW,
    Category,
    FieldDef,
    FieldType,
    TicketTypes,
    Workflow,
)
from bugtracker_tickets.domain.errors import FieldExistsError
from bugtracker_tickets.domain.tickets import Ticket

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork, TicketsState


@dataclass(frozen=True)
class IndexRow:
    """One row of `field_values`: a value in its text-like, number or date column."""

    value: str | None = None
    number: float | None = None
    day: date | None = None

    def column(self, name: str) -> Any:
        return getattr(self, name)


def index_rows(definition: FieldDef, value: object) -> tuple[IndexRow, ...]:
    """A value's rows in the filter index (as configuration_repository._index_rows)."""
    rows = []
    for stored in definition.stored_values(value):
        if definition.type is FieldType.NUMBER:
            rows.append(IndexRow(number=float(stored)))
        elif definition.type is FieldType.DATE:
            rows.append(IndexRow(day=date.fromisoformat(str(stored))))
        else:
            rows.append(IndexRow(value=str(stored)))
    return tuple(rows)


def row_matches(row: IndexRow, wanted: FieldFilter) -> bool:
    """One index row against one `field.<key>` filter (every condition on the same row,
    as the SQL subquery has them)."""
    value = row.column(wanted.column)
    if value is None:
        return False
    if wanted.equals and value not in wanted.equals:
        return False
    if wanted.gte is not None and not value >= wanted.gte:
        return False
    return wanted.lte is None or value <= wanted.lte


def deleted_keys(state: TicketsState, project_id: uuid.UUID) -> set[str]:
    return {
        d.key
        for d in state.fields.values()
        if d.project_id == project_id and d.deleted_at is not None
    }


def live_ticket(state: TicketsState, ticket: Ticket) -> Ticket:
    """A copy of the ticket as reads return it: without the values of deleted fields."""
    found = copy.deepcopy(ticket)
    if found.fields:
        hidden = deleted_keys(state, found.project_id)
        found.fields = {k: v for k, v in found.fields.items() if k not in hidden}
    return found


def matches_field_filter(state: TicketsState, ticket: Ticket, wanted: FieldFilter) -> bool:
    """Whether the ticket's value of one of the filter's fields matches it, computed from
    the ticket's `fields` with the field definitions (what the index holds)."""
    for field_id in wanted.field_ids:
        definition = state.fields.get(field_id)
        if (
            definition is None
            or definition.deleted_at is not None
            or definition.project_id != ticket.project_id
        ):
            continue
        rows = index_rows(definition, ticket.fields.get(definition.key))
        if any(row_matches(row, wanted) for row in rows):
            return True
    return False


class FakeConfigurationRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self.locks: list[ConfigLock] = []

    @property
    def _state(self) -> TicketsState:
        return self._uow.state

    async def load(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> TrackerConfig:
        if lock is not None:
            self.locks.append(lock)  # one transaction at a time: nothing to wait for
        state = self._state
        return TrackerConfig(
            state.workflows.get(project_id, DEFAULT_WORKFLOW),
            state.ticket_types.get(project_id, DEFAULT_TICKET_TYPES),
            tuple(await self.fields(project_id)),
        )

    async def workflow(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> Workflow:
        return (await self.load(project_id, lock=lock)).workflow

    async def save_workflow(self, project_id: uuid.UUID, workflow: Workflow) -> None:
        self._state.workflows[project_id] = workflow

    async def save_types(self, project_id: uuid.UUID, types: TicketTypes) -> None:
        self._state.ticket_types[project_id] = types

    async def fields(self, project_id: uuid.UUID) -> list[FieldDef]:
        state = self._state
        live = [
            d for d in state.fields.values() if d.project_id == project_id and d.deleted_at is None
        ]
        return sorted(live, key=lambda d: (state.field_positions.get(d.id, 0), d.key))

    async def field_ids(self, project_ids: Sequence[uuid.UUID], key: str) -> list[FieldDef]:
        return [
            d
            for d in self._state.fields.values()
            if d.project_id in project_ids and d.key == key and d.deleted_at is None
        ]

    async def field_keys(self, project_ids: Sequence[uuid.UUID]) -> list[str]:
        live = [
            d
            for d in self._state.fields.values()
            if d.project_id in project_ids and d.deleted_at is None
        ]
        live.sort(key=lambda d: (self._state.field_positions.get(d.id, 0), d.key))
        return list(dict.fromkeys(d.key for d in live))

    async def add_field(self, definition: FieldDef) -> None:
        state = self._state
        if definition.id in state.fields:
            raise ValueError(f"duplicate field id {definition.id}")
        # The unique constraint on (project_id, key): deleted fields not yet purged too.
        if any(
            d.project_id == definition.project_id and d.key == definition.key
            for d in state.fields.values()
        ):
            raise FieldExistsError()
        positions = [
            state.field_positions.get(d.id, 0)
            for d in state.fields.values()
            if d.project_id == definition.project_id
        ]
        state.fields[definition.id] = definition
        state.field_positions[definition.id] = max(positions, default=0) + 1

    async def update_field(self, definition: FieldDef) -> None:
        stored = self._state.fields.get(definition.id)
        if stored is None:
            return  # an UPDATE that matches no row
        # Columns an update never writes (_FIELD_CHANGES).
        fixed = {
            name: getattr(stored, name)
            for name in ("id", "project_id", "key", "type", "created_at")
        }
        self._state.fields[definition.id] = dataclasses.replace(definition, **fixed)

    async def purge_deleted_field(self, *, batch: int) -> bool:
        state = self._state
        deleted = sorted(
            (d for d in state.fields.values() if d.deleted_at is not None),
            key=lambda d: (d.deleted_at, d.id),
        )
        if not deleted:
            return False
        gone = deleted[0]
        holders = sorted({t for t, f in state.field_values if f == gone.id})[:batch]
        for ticket_id in holders:
            ticket = state.tickets.get(ticket_id)
            if ticket is not None:
                ticket.fields = {k: v for k, v in ticket.fields.items() if k != gone.key}
            del state.field_values[(ticket_id, gone.id)]
        if len(holders) < batch:
            del state.fields[gone.id]
            state.field_positions.pop(gone.id, None)
        return True

    async def index_values(
        self, ticket_id: uuid.UUID, values: Sequence[tuple[FieldDef, object]]
    ) -> None:
        index = self._state.field_values
        for definition, value in values:
            rows = index_rows(definition, value)
            if rows:
                index[(ticket_id, definition.id)] = rows
            else:
                index.pop((ticket_id, definition.id), None)

    def _counts(self, project_id: uuid.UUID, name: str, keys: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ticket in self._state.tickets.values():
            value = getattr(ticket, name)
            if ticket.project_id == project_id and value in keys:
                counts[value] = counts.get(value, 0) + 1
        return counts

    async def status_counts(self, project_id: uuid.UUID, statuses: Sequence[str]) -> dict[str, int]:
        return self._counts(project_id, "status", statuses)

    async def type_counts(self, project_id: uuid.UUID, types: Sequence[str]) -> dict[str, int]:
        return self._counts(project_id, "type", types)

    async def option_counts(self, field: FieldDef, values: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (_, field_id), rows in self._state.field_values.items():
            if field_id != field.id:
                continue
            for value in {r.value for r in rows if r.value in values}:
                assert value is not None
                counts[value] = counts.get(value, 0) + 1
        return counts

    async def tickets_where(
        self,
        project_id: uuid.UUID,
        *,
        statuses: Sequence[str] = (),
        other_category: Category | None = None,
        types: Sequence[str] = (),
        types_outside: Sequence[str] | None = None,
        field: FieldDef | None = None,
        values: Sequence[str] = (),
        limit: int,
    ) -> list[Ticket]:
        state = self._state

        def holds(ticket: Ticket) -> bool:
            if other_category is not None and ticket.status_category is other_category:
                return False
            if types_outside is not None and ticket.type in types_outside:
                return False
            if field is None:
                return True
            rows = state.field_values.get((ticket.id, field.id), ())
            return any(not values or r.value in values for r in rows)

        found = sorted(
            (
                t
                for t in state.tickets.values()
                if t.project_id == project_id
                and (not statuses or t.status in statuses)
                and (not types or t.type in types)
                and holds(t)
            ),
            key=lambda t: t.id,
        )
        return [live_ticket(state, t) for t in found[:limit]]
