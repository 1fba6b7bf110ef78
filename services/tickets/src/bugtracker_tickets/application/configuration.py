"""A project's tracker configuration (docs/adr/0040): its workflow, ticket types and
custom fields. Members read it; maintainers (PROJECT_UPDATE) change it, with If-Match.

The tickets service owns the configuration because it is the one that enforces it. Every
ticket write that checks against it takes the project's configuration lock in shared
mode and reads the configuration inside its transaction; a change takes it exclusively.
So a change waits for the ticket writes in flight, and every write after the change's
commit sees it: no ticket is accepted against an old configuration once the PUT has
answered, and no ticket is left in a status or type the change removed.

Removing statuses, types or options that tickets still use needs a `migrate` map for
them (409 with the counts otherwise); the tickets are moved in the change's transaction,
each with its history entry, version bump and event, MIGRATE_BATCH at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.etags import check_version
from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.permissions import Permission
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import TrackerConfig, UnitOfWork
from bugtracker_tickets.application.ticket_events import SERVICE
from bugtracker_tickets.application.ticket_moves import apply_moves, drop_value
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.domain.configuration import (
    MAX_FIELDS,
    Category,
    FieldDef,
    FieldOption,
    FieldType,
    TicketTypes,
    Workflow,
    check_migrate,
    workflow_document,
)
from bugtracker_tickets.domain.errors import (
    FieldExistsError,
    FieldNotFoundError,
    InvalidConfigurationError,
    OptionInUseError,
    StatusInUseError,
    TypeInUseError,
)
from bugtracker_tickets.domain.tickets import (
    KEEP,
    Keep,
    ProjectAccess,
    Ticket,
    as_json,
)
from bugtracker_tickets.domain.workflow import Resolution

logger = logging.getLogger("bugtracker.tickets.configuration")

# Tickets moved per statement batch when a change migrates them.
MIGRATE_BATCH = 500
# Deleted fields' values purged per transaction, and how often the job looks for work.
PURGE_BATCH = 500
PURGE_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class NewField:
    key: str
    name: str
    type: FieldType
    options: tuple[FieldOption, ...] = ()
    required: bool = False
    ticket_types: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class FieldPatch:
    name: str | Keep = KEEP
    description: str | Keep = KEEP
    required: bool | Keep = KEEP
    options: tuple[FieldOption, ...] | Keep = KEEP
    ticket_types: tuple[str, ...] | Keep | None = KEEP


def project_event(
    name: str, project_id: uuid.UUID, sequence: int, principal: Principal, **data: Any
) -> CloudEvent:
    return new_event(
        name,
        service=SERVICE,
        subject=project_id,
        sequence=sequence,
        data=EVENT_DATA[name](project_id=project_id, **data),
        actor_id=principal.user_id,
        correlation_id=current_request_id(),
    )


def field_document(definition: FieldDef) -> dict[str, Any]:
    """A field definition as the API and `project.fields_changed` show it."""
    return {
        "id": definition.id,
        "key": definition.key,
        "name": definition.name,
        "type": definition.type.value,
        "options": [{"value": o.value, "label": o.label} for o in definition.options],
        "required": definition.required,
        "ticket_types": list(definition.ticket_types)
        if definition.ticket_types is not None
        else None,
        "description": definition.description,
        "version": definition.version,
    }


@dataclass
class ConfigurationUseCases:
    uow: Callable[[], UnitOfWork]
    tickets: TicketUseCases
    # Set when a field was deleted: wakes `keep_purging` at once.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- access ----------------------------------------------------------------------------

    async def _changeable(self, principal: Principal, project: str) -> ProjectAccess:
        access = await self.tickets.project_access(principal, project)
        access.require(Permission.PROJECT_UPDATE)
        access.require_writable()
        return access

    async def configuration(self, principal: Principal, project: str) -> TrackerConfig:
        """The project's workflow, ticket types and fields, for any member."""
        access = await self.tickets.project_access(principal, project)
        async with self.uow() as uow:
            return await uow.configuration.load(access.project_id)

    # -- workflow --------------------------------------------------------------------------

    async def replace_workflow(
        self,
        principal: Principal,
        project: str,
        workflow: Workflow,
        migrate: Mapping[str, str],
        *,
        expected_version: int | None,
    ) -> Workflow:
        access = await self._changeable(principal, project)
        workflow.validate()
        async with self.uow() as uow:
            config = await uow.configuration.load(access.project_id, lock="exclusive")
            old = config.workflow
            check_version(old.version, expected_version)
            removed = [s.key for s in old.statuses if workflow.status(s.key) is None]
            counts = await uow.configuration.status_counts(access.project_id, removed)
            moves = check_migrate(counts, migrate, workflow.keys(), StatusInUseError)
            new = dataclasses.replace(workflow, version=old.version + 1)
            await uow.configuration.save_workflow(access.project_id, new)
            # Kept statuses in another category: their tickets take it as a move would
            # (resolution set into done, cleared out of it), each with its event.
            for status in new.statuses:
                if old.status(status.key) is not None and old.category(status.key) is not (
                    status.category
                ):
                    await self._migrate(
                        uow,
                        principal,
                        access,
                        functools.partial(_move_status, workflow=new, to=status.key),
                        statuses=(status.key,),
                        other_category=status.category,
                    )
            for source, target in moves.items():
                await self._migrate(
                    uow,
                    principal,
                    access,
                    functools.partial(_move_status, workflow=new, to=target),
                    statuses=(source,),
                )
            await uow.outbox.add(
                project_event(
                    "project.workflow_changed",
                    access.project_id,
                    new.version,
                    principal,
                    version=new.version,
                    workflow=workflow_document(new),
                    moved={key: counts[key] for key in moves},
                )
            )
            await uow.commit()
        return new

    # -- ticket types ----------------------------------------------------------------------

    async def replace_types(
        self,
        principal: Principal,
        project: str,
        types: TicketTypes,
        migrate: Mapping[str, str],
        *,
        expected_version: int | None,
    ) -> TicketTypes:
        access = await self._changeable(principal, project)
        types.validate()
        kept = types.keys()
        async with self.uow() as uow:
            config = await uow.configuration.load(access.project_id, lock="exclusive")
            check_version(config.types.version, expected_version)
            removed = [t.key for t in config.types.types if t.key not in kept]
            counts = await uow.configuration.type_counts(access.project_id, removed)
            moves = check_migrate(counts, migrate, kept, TypeInUseError)
            new = dataclasses.replace(types, version=config.types.version + 1)
            await uow.configuration.save_types(access.project_id, new)
            await self._rescope_fields(uow, config, removed, kept, migrate)
            for source, target in moves.items():
                await self._migrate(
                    uow,
                    principal,
                    access,
                    functools.partial(_set, name="type", value=target),
                    types=(source,),
                )
            await uow.outbox.add(
                project_event(
                    "project.ticket_types_changed",
                    access.project_id,
                    new.version,
                    principal,
                    version=new.version,
                    types=[{"key": t.key, "name": t.name} for t in new.types],
                    moved={key: counts[key] for key in moves},
                )
            )
            await uow.commit()
        return new

    @staticmethod
    async def _rescope_fields(
        uow: UnitOfWork,
        config: TrackerConfig,
        removed: list[str],
        kept: list[str],
        migrate: Mapping[str, str],
    ) -> None:
        """Fields scoped to a removed type follow it to its `migrate` target; a field that
        would be left scoped to no type stops the change (422): it would apply to none."""
        for definition in config.fields:
            scope = definition.ticket_types
            if scope is None or not set(scope) & set(removed):
                continue
            moved = [migrate.get(t, t) for t in scope if t in kept or t in migrate]
            if not moved:
                raise InvalidConfigurationError(
                    [
                        f"Field {definition.key!r} applies only to removed types; give "
                        "`migrate` for them or change the field's ticket_types first."
                    ]
                )
            await uow.configuration.update_field(
                dataclasses.replace(
                    definition,
                    ticket_types=tuple(dict.fromkeys(moved)),
                    version=definition.version + 1,
                    updated_at=datetime.now(UTC),
                )
            )

    # -- custom fields ---------------------------------------------------------------------

    async def get_field(self, principal: Principal, project: str, key: str) -> FieldDef:
        config = await self.configuration(principal, project)
        found = config.field(key)
        if found is None:
            raise FieldNotFoundError()
        return found

    async def create_field(self, principal: Principal, project: str, new: NewField) -> FieldDef:
        access = await self._changeable(principal, project)
        now = datetime.now(UTC)
        definition = FieldDef(
            id=uuid.uuid4(),
            project_id=access.project_id,
            key=new.key,
            name=new.name,
            type=new.type,
            options=new.options,
            required=new.required,
            ticket_types=new.ticket_types,
            description=new.description,
            created_at=now,
            updated_at=now,
        )
        async with self.uow() as uow:
            config = await uow.configuration.load(access.project_id, lock="exclusive")
            definition.validate(config.types.keys())
            if config.field(new.key) is not None:
                raise FieldExistsError()
            if len(config.fields) >= MAX_FIELDS:
                raise InvalidConfigurationError([f"A project has at most {MAX_FIELDS} fields."])
            await uow.configuration.add_field(definition)
            await uow.outbox.add(self._fields_event("created", definition, principal))
            await uow.commit()
        return definition

    async def update_field(
        self,
        principal: Principal,
        project: str,
        key: str,
        patch: FieldPatch,
        migrate: Mapping[str, str | None],
        *,
        expected_version: int | None,
    ) -> FieldDef:
        access = await self._changeable(principal, project)
        async with self.uow() as uow:
            config = await uow.configuration.load(access.project_id, lock="exclusive")
            old = config.field(key)
            if old is None:
                raise FieldNotFoundError()
            check_version(old.version, expected_version)
            changes = {
                name: getattr(patch, name)
                for name in ("name", "description", "required", "options", "ticket_types")
                if not isinstance(getattr(patch, name), Keep)
            }
            new = dataclasses.replace(old, **changes)
            new.validate(config.types.keys())
            if new == old:
                return old
            removed = [v for v in old.option_values() if v not in new.option_values()]
            counts = await uow.configuration.option_counts(old, removed)
            moves = check_migrate(counts, migrate, new.option_values(), OptionInUseError)
            new = dataclasses.replace(new, version=old.version + 1, updated_at=datetime.now(UTC))
            await uow.configuration.update_field(new)
            if moves:
                await self._migrate(
                    uow,
                    principal,
                    access,
                    functools.partial(_move_option, definition=new, moves=moves),
                    field=old,
                    values=tuple(moves),
                    definition=new,
                )
            if new.ticket_types is not None and new.ticket_types != old.ticket_types:
                # Tickets of the types the field no longer applies to lose their value.
                await self._migrate(
                    uow,
                    principal,
                    access,
                    functools.partial(drop_value, definition=new),
                    types_outside=new.ticket_types,
                    field=old,
                    definition=new,
                )
            await uow.outbox.add(self._fields_event("updated", new, principal))
            await uow.commit()
        return new

    async def delete_field(
        self, principal: Principal, project: str, key: str, *, expected_version: int | None
    ) -> None:
        """Hides the field and its values at once; `keep_purging` removes the values."""
        access = await self._changeable(principal, project)
        async with self.uow() as uow:
            config = await uow.configuration.load(access.project_id, lock="exclusive")
            old = config.field(key)
            if old is None:
                raise FieldNotFoundError()
            check_version(old.version, expected_version)
            now = datetime.now(UTC)
            gone = dataclasses.replace(old, deleted_at=now, updated_at=now, version=old.version + 1)
            await uow.configuration.update_field(gone)
            await uow.outbox.add(self._fields_event("deleted", gone, principal))
            await uow.commit()
        self.wake.set()

    def _fields_event(self, change: str, definition: FieldDef, principal: Principal) -> CloudEvent:
        return project_event(
            "project.fields_changed",
            definition.project_id,
            definition.version,
            principal,
            change=change,
            field=field_document(definition),
        )

    # -- moving tickets --------------------------------------------------------------------

    async def _migrate(
        self,
        uow: UnitOfWork,
        principal: Principal,
        access: ProjectAccess,
        move: Callable[[Ticket], dict[str, dict[str, Any]]],
        *,
        statuses: tuple[str, ...] = (),
        other_category: Category | None = None,
        types: tuple[str, ...] = (),
        types_outside: tuple[str, ...] | None = None,
        field: FieldDef | None = None,
        values: tuple[str, ...] = (),
        definition: FieldDef | None = None,
    ) -> int:
        """Move every ticket matching the condition with `move` (which returns its
        changes), MIGRATE_BATCH at a time (`apply_moves`); how many. A moved ticket no
        longer matches, so the loop ends."""
        moved = 0
        while True:
            batch = await uow.configuration.tickets_where(
                access.project_id,
                statuses=statuses,
                other_category=other_category,
                types=types,
                types_outside=types_outside,
                field=field,
                values=values,
                limit=MIGRATE_BATCH,
            )
            if not batch:
                return moved
            await apply_moves(uow, principal, batch, move, reindex=definition)
            moved += len(batch)

    # -- purging deleted fields ------------------------------------------------------------

    async def purge_deleted_fields(self) -> int:
        """Remove the values of deleted fields, PURGE_BATCH tickets per transaction, and
        the definitions once empty (their keys can be used again); batches done."""
        done = 0
        while True:
            async with self.uow() as uow:
                worked = await uow.configuration.purge_deleted_field(batch=PURGE_BATCH)
                await uow.commit()
            if not worked:
                return done
            done += 1

    async def keep_purging(self, *, interval: float = PURGE_INTERVAL_SECONDS) -> None:
        """The background job: purge, then wait for a deletion or `interval` seconds."""
        while True:
            self.wake.clear()
            try:
                await self.purge_deleted_fields()
            except Exception:
                logger.exception("purging deleted fields failed; retry in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)


def _set(ticket: Ticket, name: str, value: Any) -> dict[str, dict[str, Any]]:
    old = getattr(ticket, name)
    setattr(ticket, name, value)
    return {name: {"from": as_json(old), "to": as_json(value)}}


def _move_status(ticket: Ticket, workflow: Workflow, to: str) -> dict[str, dict[str, Any]]:
    """A migrated ticket enters `to` (or its status enters another category) as a
    transition would leave it: a done status keeps the ticket's resolution (or `fixed`),
    any other clears it. Its category is part of the change history and events record."""
    category = workflow.category(to)
    if ticket.status != to:
        changes = _set(ticket, "status", to)
        ticket.status_category = category
    else:  # the status itself moved to another category
        changes = _set(ticket, "status_category", category)
    resolution = None
    if ticket.status_category is Category.DONE:
        resolution = ticket.resolution or Resolution.FIXED.value
    if resolution != ticket.resolution:
        changes |= _set(ticket, "resolution", resolution)
    return changes


def _move_option(
    ticket: Ticket, definition: FieldDef, moves: Mapping[str, str | None]
) -> dict[str, dict[str, Any]]:
    """The ticket's value of the field with removed options moved (None: dropped)."""
    old = ticket.fields.get(definition.key)
    if isinstance(old, list):
        moved = [moves.get(v, v) if v in moves else v for v in old]
        new: Any = [v for v in definition.option_values() if v in moved] or None
    else:
        new = moves.get(old, old) if isinstance(old, str) else old
    fields = dict(ticket.fields)
    if new is None:
        fields.pop(definition.key, None)
    else:
        fields[definition.key] = new
    ticket.fields = fields
    return {f"fields.{definition.key}": {"from": old, "to": new}}
