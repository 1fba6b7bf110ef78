"""A project's tracker configuration in the database (docs/adr/0040): its workflow and
ticket types in `project_configs`, its custom fields in `custom_fields`, and the filter
index of ticket values in `field_values`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from bugtracker_shared.rows import Columns
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.application.ports import ConfigLock, TrackerConfig
from bugtracker_tickets.domain.configuration import (
    DEFAULT_TICKET_TYPES,
    DEFAULT_WORKFLOW,
    Category,
    FieldDef,
    FieldOption,
    FieldType,
    TicketTypeDef,
    TicketTypes,
    Workflow,
    workflow_document,
    workflow_of,
)
from bugtracker_tickets.domain.errors import FieldExistsError
from bugtracker_tickets.domain.tickets import Ticket
from bugtracker_tickets.infrastructure.repositories import TICKET_COLUMNS, ticket_from_row
from bugtracker_tickets.infrastructure.tables import (
    custom_fields,
    field_values,
    project_configs,
    tickets,
)

# The first key of the transaction-scoped advisory lock on a project's configuration (the
# second is the project id's hash); the hierarchy lock is 0x7E1.
CONFIG_LOCK = 0x7E2


def _types_of(document: dict[str, Any], version: int) -> TicketTypes:
    return TicketTypes(
        types=tuple(TicketTypeDef(t["key"], t["name"]) for t in document["types"]),
        version=version,
    )


def _options(value: Any) -> tuple[FieldOption, ...]:
    return tuple(FieldOption(o["value"], o["label"]) for o in value)


def _dump_options(options: tuple[FieldOption, ...]) -> list[dict[str, str]]:
    return [{"value": o.value, "label": o.label} for o in options]


FIELDS = Columns(
    FieldDef,
    custom_fields,
    load={
        "type": FieldType,
        "options": _options,
        "ticket_types": lambda v: None if v is None else tuple(v),
    },
    dump={
        "options": _dump_options,
        "ticket_types": lambda v: None if v is None else list(v),
    },
    supplied=("position",),
)
_FIELD_CHANGES = FIELDS.without("id", "project_id", "key", "type", "created_at")


def _index_rows(ticket_id: uuid.UUID, definition: FieldDef, value: object) -> list[dict[str, Any]]:
    """A value's rows in the filter index (text-like, number or date column)."""
    rows = []
    for stored in definition.stored_values(value):
        row: dict[str, Any] = {
            "ticket_id": ticket_id,
            "field_id": definition.id,
            "value": None,
            "number": None,
            "day": None,
        }
        if definition.type is FieldType.NUMBER:
            row["number"] = stored
        elif definition.type is FieldType.DATE:
            row["day"] = date.fromisoformat(str(stored))
        else:
            row["value"] = stored
        rows.append(row)
    return rows


class SqlConfigurationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def load(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> TrackerConfig:
        workflow, types = await self._documents(project_id, lock)
        return TrackerConfig(workflow, types, tuple(await self.fields(project_id)))

    async def workflow(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> Workflow:
        workflow, _ = await self._documents(project_id, lock)
        return workflow

    async def _documents(
        self, project_id: uuid.UUID, lock: ConfigLock | None
    ) -> tuple[Workflow, TicketTypes]:
        """The workflow and the ticket types (each the default unless stored: a document
        not stored has the default's version, its column's default)."""
        if lock is not None:
            take = (
                func.pg_advisory_xact_lock_shared if lock == "share" else func.pg_advisory_xact_lock
            )
            # Locked first, read after: the read sees what the last change committed.
            await self._session.execute(select(take(CONFIG_LOCK, func.hashtext(str(project_id)))))
        stored = select(
            project_configs.c.workflow,
            project_configs.c.workflow_version,
            project_configs.c.ticket_types,
            project_configs.c.types_version,
        ).where(project_configs.c.project_id == project_id)
        row = (await self._session.execute(stored)).mappings().first()
        workflow, types = DEFAULT_WORKFLOW, DEFAULT_TICKET_TYPES
        if row is not None and row["workflow"] is not None:
            workflow = workflow_of(row["workflow"], row["workflow_version"])
        if row is not None and row["ticket_types"] is not None:
            types = _types_of(row["ticket_types"], row["types_version"])
        return workflow, types

    async def _save(self, project_id: uuid.UUID, values: dict[str, Any]) -> None:
        statement = pg_insert(project_configs).values(project_id=project_id, **values)
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["project_id"], set_=values)
        )

    async def save_workflow(self, project_id: uuid.UUID, workflow: Workflow) -> None:
        await self._save(
            project_id,
            {"workflow": workflow_document(workflow), "workflow_version": workflow.version},
        )

    async def save_types(self, project_id: uuid.UUID, types: TicketTypes) -> None:
        document = {"types": [{"key": t.key, "name": t.name} for t in types.types]}
        await self._save(project_id, {"ticket_types": document, "types_version": types.version})

    async def fields(self, project_id: uuid.UUID) -> list[FieldDef]:
        query = (
            select(*FIELDS.columns)
            .where(custom_fields.c.project_id == project_id, custom_fields.c.deleted_at.is_(None))
            .order_by(custom_fields.c.position, custom_fields.c.key)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [FIELDS.from_row(row) for row in rows]

    async def field_ids(self, project_ids: Sequence[uuid.UUID], key: str) -> list[FieldDef]:
        query = select(*FIELDS.columns).where(
            custom_fields.c.project_id.in_(project_ids),
            custom_fields.c.key == key,
            custom_fields.c.deleted_at.is_(None),
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [FIELDS.from_row(row) for row in rows]

    async def field_keys(self, project_ids: Sequence[uuid.UUID]) -> list[str]:
        c = custom_fields.c
        rows = await self._session.scalars(
            select(c.key)
            .where(c.project_id.in_(list(project_ids)), c.deleted_at.is_(None))
            .group_by(c.key)
            .order_by(func.min(c.position), c.key)
        )
        return list(rows)

    async def add_field(self, definition: FieldDef) -> None:
        position = (
            select(func.coalesce(func.max(custom_fields.c.position), 0) + 1)
            .where(custom_fields.c.project_id == definition.project_id)
            .scalar_subquery()
        )
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(custom_fields).values(
                        {**FIELDS.values(definition), "position": position}
                    )
                )
        except IntegrityError as exc:
            raise FieldExistsError() from exc

    async def update_field(self, definition: FieldDef) -> None:
        await self._session.execute(
            update(custom_fields)
            .where(custom_fields.c.id == definition.id)
            .values(_FIELD_CHANGES.values(definition))
        )

    async def purge_deleted_field(self, *, batch: int) -> bool:
        found = (
            await self._session.execute(
                select(custom_fields.c.id, custom_fields.c.key)
                .where(custom_fields.c.deleted_at.is_not(None))
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if found is None:
            return False
        field_id, key = found
        holders = (
            select(field_values.c.ticket_id)
            .where(field_values.c.field_id == field_id)
            .distinct()
            .limit(batch)
        )
        ids = list((await self._session.execute(holders)).scalars())
        if ids:
            await self._session.execute(
                update(tickets)
                .where(tickets.c.id.in_(ids))
                .values(fields=tickets.c.fields.op("-")(literal(key)))
            )
            await self._session.execute(
                delete(field_values).where(
                    field_values.c.field_id == field_id, field_values.c.ticket_id.in_(ids)
                )
            )
        if len(ids) < batch:
            # Values not in the index (a field without any) are gone with the last batch.
            await self._session.execute(delete(custom_fields).where(custom_fields.c.id == field_id))
        return True

    async def index_values(
        self, ticket_id: uuid.UUID, values: Sequence[tuple[FieldDef, object]]
    ) -> None:
        if not values:
            return
        await self._session.execute(
            delete(field_values).where(
                field_values.c.ticket_id == ticket_id,
                field_values.c.field_id.in_([d.id for d, _ in values]),
            )
        )
        rows = [row for d, value in values for row in _index_rows(ticket_id, d, value)]
        if rows:
            await self._session.execute(insert(field_values), rows)

    async def _counts(
        self, column: Any, project_id: uuid.UUID, keys: Sequence[str]
    ) -> dict[str, int]:
        if not keys:
            return {}
        query = (
            select(column, func.count())
            .where(tickets.c.project_id == project_id, column.in_(keys))
            .group_by(column)
        )
        return {key: int(n) for key, n in (await self._session.execute(query)).all()}

    async def status_counts(self, project_id: uuid.UUID, statuses: Sequence[str]) -> dict[str, int]:
        return await self._counts(tickets.c.status, project_id, statuses)

    async def type_counts(self, project_id: uuid.UUID, types: Sequence[str]) -> dict[str, int]:
        return await self._counts(tickets.c.type, project_id, types)

    async def option_counts(self, field: FieldDef, values: Sequence[str]) -> dict[str, int]:
        if not values:
            return {}
        query = (
            select(field_values.c.value, func.count(func.distinct(field_values.c.ticket_id)))
            .where(field_values.c.field_id == field.id, field_values.c.value.in_(values))
            .group_by(field_values.c.value)
        )
        return {str(v): int(n) for v, n in (await self._session.execute(query)).all()}

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
        query = select(*TICKET_COLUMNS).where(tickets.c.project_id == project_id)
        if statuses:
            query = query.where(tickets.c.status.in_(statuses))
        if other_category is not None:
            query = query.where(tickets.c.status_category != other_category.value)
        if types:
            query = query.where(tickets.c.type.in_(types))
        if types_outside is not None:
            query = query.where(tickets.c.type.not_in(types_outside))
        if field is not None:
            held = select(field_values.c.ticket_id).where(field_values.c.field_id == field.id)
            if values:
                held = held.where(field_values.c.value.in_(values))
            query = query.where(tickets.c.id.in_(held))
        query = query.order_by(tickets.c.id).limit(limit).with_for_update(of=tickets)
        rows = (await self._session.execute(query)).mappings().all()
        return [ticket_from_row(row) for row in rows]
