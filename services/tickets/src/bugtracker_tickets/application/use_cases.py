"""Tickets use cases. Each one owns a unit of work and commits it at most once.

Who may do what comes from the projects service (the caller's role in the project);
a caller who may not see a project gets the same 404 as for a ticket that does not exist.
Every change bumps the ticket's version, writes field-level history and one event to the
outbox, all in the same transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from bugtracker_shared.etags import check_version
from bugtracker_shared.pagination import decode_cursor, decode_int_cursor, encode_cursor
from bugtracker_shared.permissions import Permission
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.comment_writing import (
    mentions_in,
    new_comment,
    store_comment,
)
from bugtracker_tickets.application.field_filters import FieldCondition, field_filter
from bugtracker_tickets.application.markdown import to_html
from bugtracker_tickets.application.planning_rules import (
    announce_unblocked,
    check_can_finish,
    check_milestone,
    check_parent,
)
from bugtracker_tickets.application.ports import (
    FieldFilter,
    IdempotencyClaim,
    ProjectDirectory,
    TicketQuery,
    TicketReads,
    TrackerConfig,
    UnitOfWork,
)
from bugtracker_tickets.application.ticket_events import record, ticket_event
from bugtracker_tickets.application.ticket_moves import apply_moves, drop_value
from bugtracker_tickets.application.ticket_queries import CompiledQuery, QueryCompiler
from bugtracker_tickets.domain.configuration import (
    FieldDef,
    FieldType,
    apply_field_values,
)
from bugtracker_tickets.domain.errors import (
    AssigneeNotMemberError,
    IdempotencyKeyReusedError,
    InvalidFieldValuesError,
    InvalidFilterError,
    InvalidTicketTypeError,
    ProjectNotFoundError,
    RestoreExpiredError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.tickets import (
    RESTORE_WINDOW,
    TICKET_KEY,
    HistoryEntry,
    Keep,
    Priority,
    ProjectAccess,
    Ticket,
    TicketPatch,
    as_json,
    ticket_key,
    visible,
)
from bugtracker_tickets.domain.tickets import project_ref as project_ref_of
from bugtracker_tickets.domain.workflow import (
    Resolution,
    Transition,
    available,
    plan_transition,
)

SORTS = ("created_at", "updated_at", "priority", "due_date")
# Tickets purged per transaction, and how often the purge looks for them.
PURGE_BATCH = 200
PURGE_INTERVAL_SECONDS = 3600.0
MEMBER_LEFT_BATCH = 100
# The actor of a change the service makes itself, when the event that caused it names none.
SYSTEM_ACTOR = uuid.UUID(int=0)

logger = logging.getLogger("bugtracker.tickets")


@dataclass(frozen=True)
class NewTicket:
    title: str
    description: str = ""
    type: str | None = None  # the project's first ticket type
    priority: Priority = Priority.MEDIUM
    labels: tuple[str, ...] = ()
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None
    milestone_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    fields: dict[str, Any] | None = None


@dataclass(frozen=True)
class Idempotency:
    """A client's `Idempotency-Key` and a fingerprint of what it asked for."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str | None, body: object) -> Idempotency | None:
        if key is None:
            return None
        canonical = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
        return cls(key=key, fingerprint=hashlib.sha256(canonical.encode()).hexdigest())

    async def claim(
        self, uow: UnitOfWork, user_id: uuid.UUID, scope: str, resource_id: uuid.UUID
    ) -> uuid.UUID | None:
        """Claim the key for `resource_id` in the caller's transaction. When the key was
        claimed before with the same body, the earlier resource's id; with another body,
        422."""
        earlier = await uow.idempotency.claim(
            IdempotencyClaim(
                user_id=user_id,
                scope=scope,
                key=self.key,
                fingerprint=self.fingerprint,
                resource_id=resource_id,
            )
        )
        if earlier is None:
            return None
        if earlier.fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError(
                "This Idempotency-Key was used with a different request body."
            )
        return earlier.resource_id


@dataclass(frozen=True)
class Created:
    ticket: Ticket
    replayed: bool = False


@dataclass(frozen=True)
class ListRequest:
    statuses: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    types: tuple[str, ...] = ()
    fields: tuple[FieldCondition, ...] = ()
    assignee: Literal["me", "none"] | uuid.UUID | None = None
    reporter: uuid.UUID | None = None
    labels: tuple[str, ...] = ()
    q: str | None = None
    due_before: date | None = None
    updated_since: datetime | None = None
    milestone: Literal["none"] | uuid.UUID | None = None
    parent: Literal["none"] | uuid.UUID | None = None
    blocked: bool = False
    query: str | None = None
    """A typed query (docs/adr/0045), combined with the filters above."""
    sort: str | None = None
    limit: int = 20
    cursor: str | None = None
    include_total: bool = False


@dataclass(frozen=True)
class TicketList:
    items: list[Ticket]
    next_cursor: str | None
    total: int | None


def _history(
    ticket: Ticket, actor: uuid.UUID, at: datetime, changes: dict[str, dict[str, Any]]
) -> list[HistoryEntry]:
    return [
        HistoryEntry(ticket.id, at, actor, name, change["from"], change["to"])
        for name, change in changes.items()
    ]


def parse_ticket_ref(ticket_ref: str) -> uuid.UUID | str | None:
    """A ticket is named by its id or its key (case-insensitive); None names nothing."""
    if TICKET_KEY.match(ticket_ref.upper()):
        return ticket_ref.upper()
    try:
        return uuid.UUID(ticket_ref)
    except ValueError:
        return None


def checked_type(config: TrackerConfig, ticket_type: str | None) -> str:
    """The ticket type asked for (the project's first when none), if the project has it."""
    if ticket_type is None:
        return config.types.default
    known = config.types.keys()
    if ticket_type not in known:
        raise InvalidTicketTypeError(ticket_type, known)
    return ticket_type


@dataclass
class TicketUseCases:
    uow: Callable[[], UnitOfWork]
    projects: ProjectDirectory
    reads: TicketReads

    # -- access --------------------------------------------------------------------------

    async def project_access(self, principal: Principal, project_ref: str) -> ProjectAccess:
        ref = project_ref_of(project_ref)
        return visible(await self.projects.access(ref, principal))

    async def check_assignee(
        self, principal: Principal, access: ProjectAccess, assignee_id: uuid.UUID | None
    ) -> None:
        if assignee_id is not None and not await self.projects.is_member(
            access.project_id, assignee_id, principal
        ):
            raise AssigneeNotMemberError("The assignee must be a member of the project.")

    async def visible_ticket(
        self, principal: Principal, ticket_ref: str
    ) -> tuple[Ticket, ProjectAccess]:
        """The ticket by id or key and the caller's access to its project; 404 when either
        does not exist for the caller (deleted tickets included)."""
        ref = parse_ticket_ref(ticket_ref)
        found = await self.reads.get(ref, principal) if ref is not None else None
        if found is None or found[0].deleted_at is not None:
            raise TicketNotFoundError("No such ticket.")
        ticket, access = found
        if access is None:
            try:
                access = await self.project_access(principal, str(ticket.project_id))
            except ProjectNotFoundError as exc:
                raise TicketNotFoundError("No such ticket.") from exc
        return ticket, access

    @staticmethod
    async def _load(uow: UnitOfWork, ticket_ref: str) -> Ticket | None:
        ref = parse_ticket_ref(ticket_ref)
        if isinstance(ref, str):
            return await uow.tickets.get_by_key(ref)
        return await uow.tickets.get(ref) if ref is not None else None

    async def _locked(self, uow: UnitOfWork, ticket_id: uuid.UUID) -> Ticket:
        ticket = await uow.tickets.get(ticket_id, for_update=True)
        if ticket is None or ticket.deleted_at is not None:
            raise TicketNotFoundError("No such ticket.")
        return ticket

    # -- create and read ----------------------------------------------------------------

    async def create_ticket(
        self,
        principal: Principal,
        project_ref: str,
        new: NewTicket,
        idempotency: Idempotency | None = None,
    ) -> Created:
        access = await self.project_access(principal, project_ref)
        access.require(Permission.TICKET_CREATE)
        access.require_writable()
        await self.check_assignee(principal, access, new.assignee_id)
        description_html = await to_html(new.description)
        now = datetime.now(UTC)
        async with self.uow() as uow:
            # The configuration lock first, before any row lock (the milestone's, below),
            # as a configuration change takes it (docs/adr/0040).
            config = await uow.configuration.load(access.project_id, lock="share")
            ticket_id = uuid.uuid4()
            if idempotency is not None:
                earlier = await idempotency.claim(
                    uow, principal.user_id, f"ticket:{access.project_id}", ticket_id
                )
                if earlier is not None:
                    replayed = await uow.tickets.get(earlier)
                    if replayed is None:
                        raise TicketNotFoundError("No such ticket.")
                    return Created(replayed, replayed=True)
            await check_milestone(uow, access.project_id, new.milestone_id)
            await check_parent(uow, None, access.project_id, new.parent_id)
            ticket_type = checked_type(config, new.type)
            values = apply_field_values(
                config.fields, ticket_type, {}, new.fields, creating=True
            ).values
            await self.check_field_users(principal, access, config.fields, values)
            draft = Ticket(
                id=ticket_id,
                project_id=access.project_id,
                key="",  # with the number, in the creating statement
                number=0,
                title=new.title,
                description=new.description,
                description_html=description_html,
                type=ticket_type,
                priority=new.priority,
                status=config.workflow.initial,
                status_category=config.workflow.category(config.workflow.initial),
                fields=values,
                reporter_id=principal.user_id,
                assignee_id=new.assignee_id,
                labels=list(new.labels),
                due_date=new.due_date,
                milestone_id=new.milestone_id,
                parent_id=new.parent_id,
                created_at=now,
                updated_at=now,
            )
            # The reporter and the assignee watch their ticket from the start (in the
            # order the watcher list has: same time, then by user id).
            initial = sorted({w for w in (draft.reporter_id, draft.assignee_id) if w})
            events = [ticket_event("ticket.created", draft, principal, initial)]
            if draft.assignee_id is not None:
                changes = {"assignee_id": {"from": None, "to": str(draft.assignee_id)}}
                events.append(
                    ticket_event("ticket.assigned", draft, principal, initial, changes=changes)
                )
            number = await uow.tickets.create(draft, access.project_key, initial, events)
            await uow.configuration.index_values(
                draft.id, [(d, values[d.key]) for d in config.fields if d.key in values]
            )
            ticket = dataclasses.replace(
                draft, number=number, key=ticket_key(access.project_key, number)
            )
            await uow.commit()
        return Created(ticket)

    async def get_ticket(self, principal: Principal, ticket_ref: str) -> Ticket:
        ticket, _ = await self.visible_ticket(principal, ticket_ref)
        return ticket

    async def list_tickets(
        self, principal: Principal, project_ref: str | None, request: ListRequest
    ) -> TicketList:
        """One project's tickets, or (without `project_ref`) those of every project the
        caller may read."""
        query = await self.search_query(principal, project_ref, request)
        if query is None:
            return TicketList([], None, 0 if request.include_total else None)
        after = decode_cursor(request.cursor, 2) if request.cursor else None
        page = await self.reads.search(
            query, after=after, limit=request.limit, with_total=request.include_total
        )
        next_cursor = encode_cursor(page.next_after) if page.next_after else None
        return TicketList(page.tickets, next_cursor, page.total)

    async def search_query(
        self, principal: Principal, project_ref: str | None, request: ListRequest
    ) -> TicketQuery | None:
        """What a list asks for, checked (404 for a project the caller may not see, 422
        for filters it cannot apply); None when the caller can see no project."""
        if project_ref is not None:
            project_ids: tuple[uuid.UUID, ...] = (
                (await self.project_access(principal, project_ref)).project_id,
            )
            if request.statuses or request.types:
                await self._check_filters(project_ids[0], request)
        else:
            project_ids = tuple(await self.projects.visible_projects(principal))
        typed = CompiledQuery(project_ids)
        if request.query:  # checked even when the caller sees no project
            typed = await QueryCompiler(self.uow, self.projects).compile(
                principal,
                request.query,
                project_ids,
                cross_project=project_ref is None,
                now=datetime.now(UTC),
            )
            project_ids = typed.project_ids
        text = " ".join(part for part in (request.q, typed.text) if part) or None
        # docs/api.md: -updated_at unless asked otherwise, with `q` too (an index serves it at
        # any size); relevance is on request, as it ranks every match (ADR 0022). The
        # `sort` parameter wins over a query's `sort:`.
        sort = request.sort or typed.sort or "-updated_at"
        if sort == "relevance":
            sort = "rank" if text else "-updated_at"
        # `me` is the caller; `none` asks for unassigned tickets.
        assignee = principal.user_id if request.assignee == "me" else request.assignee
        query = TicketQuery(
            project_ids=project_ids,
            statuses=request.statuses,
            priorities=request.priorities,
            types=request.types,
            fields=await self._field_filters(project_ids, request.fields) + typed.fields,
            assignee_id=assignee if isinstance(assignee, uuid.UUID) else None,
            unassigned=assignee == "none",
            reporter_id=request.reporter,
            labels=request.labels,
            text=text,
            due_before=request.due_before,
            updated_since=request.updated_since,
            milestone_id=request.milestone if isinstance(request.milestone, uuid.UUID) else None,
            no_milestone=request.milestone == "none",
            parent_id=request.parent if isinstance(request.parent, uuid.UUID) else None,
            no_parent=request.parent == "none",
            blocked=request.blocked,
            conditions=typed.conditions,
            sort=sort,
        )
        return query if project_ids else None

    # -- configuration (docs/adr/0040) ------------------------------------------------

    async def check_field_users(
        self,
        principal: Principal,
        access: ProjectAccess,
        definitions: Sequence[FieldDef],
        values: Mapping[str, Any],
    ) -> None:
        """Values of `user` fields must be members of the project (422 otherwise)."""
        problems = {}
        for definition in definitions:
            value = values.get(definition.key)
            if definition.type is FieldType.USER and value is not None:
                member = await self.projects.is_member(
                    access.project_id, uuid.UUID(str(value)), principal
                )
                if not member:
                    problems[definition.key] = "must be a member of the project"
        if problems:
            raise InvalidFieldValuesError(problems)

    async def _apply_fields(
        self,
        uow: UnitOfWork,
        principal: Principal,
        access: ProjectAccess,
        ticket: Ticket,
        patch: TicketPatch,
        config: TrackerConfig,
    ) -> dict[str, dict[str, Any]]:
        """The ticket's type checked and its custom field values set from the patch, with
        the values' filter index; the changes as history names them (`fields.<key>`)."""
        checked_type(config, ticket.type)
        given = None if isinstance(patch.fields, Keep) else patch.fields
        # A new type must come with the values its required fields need, as on create.
        new_type = not isinstance(patch.type, Keep)
        result = apply_field_values(
            config.fields, ticket.type, ticket.fields, given, creating=new_type
        )
        changed_values = {key: new for key, (_, new) in result.changed.items()}
        await self.check_field_users(principal, access, config.fields, changed_values)
        ticket.fields = result.values
        await uow.configuration.index_values(
            ticket.id,
            [(d, result.values.get(d.key)) for d in config.fields if d.key in result.changed],
        )
        return {
            f"fields.{key}": {"from": old, "to": new} for key, (old, new) in result.changed.items()
        }

    async def _check_filters(self, project_id: uuid.UUID, request: ListRequest) -> None:
        """A project's list filters by its own statuses and types (422 for others)."""
        async with self.uow() as uow:
            config = await uow.configuration.load(project_id)
        for parameter, asked, known in (
            ("status", request.statuses, config.workflow.keys()),
            ("type", request.types, config.types.keys()),
        ):
            unknown = sorted(set(asked) - set(known))
            if unknown:
                raise InvalidFilterError(
                    parameter, f"names what the project does not have: {', '.join(unknown)}"
                )

    async def _field_filters(
        self, project_ids: tuple[uuid.UUID, ...], conditions: tuple[FieldCondition, ...]
    ) -> tuple[FieldFilter, ...]:
        """The `field.<key>` filters typed against the fields of that key in the listed
        projects; 422 for a key no listed project has or a value its type cannot take."""
        if not conditions or not project_ids:
            return ()
        filters = []
        async with self.uow() as uow:
            for condition in conditions:
                definitions = await uow.configuration.field_ids(project_ids, condition.key)
                filters.append(field_filter(condition, definitions))
        return tuple(filters)

    # -- changes ------------------------------------------------------------------------

    async def update_ticket(
        self,
        principal: Principal,
        ticket_ref: str,
        patch: TicketPatch,
        *,
        expected_version: int | None,
    ) -> Ticket:
        found, access = await self.visible_ticket(principal, ticket_ref)
        access.require_edit(found.reporter_id, principal.user_id)
        description = patch.description
        description_html = None if isinstance(description, Keep) else await to_html(description)
        async with self.uow() as uow:
            # The configuration lock before any ticket lock, in every write (a change of
            # the configuration takes it first and then locks the tickets it moves).
            config = None
            if not (isinstance(patch.type, Keep) and isinstance(patch.fields, Keep)):
                config = await uow.configuration.load(found.project_id, lock="share")
            ticket = await self._locked(uow, found.id)
            check_version(ticket.version, expected_version)
            changes = {
                name: {"from": as_json(old), "to": as_json(new)}
                for name, (old, new) in patch.apply_to(ticket).items()
            }
            if not changes and isinstance(patch.fields, Keep):
                return ticket
            if "milestone_id" in changes:
                await check_milestone(uow, ticket.project_id, ticket.milestone_id)
            if "parent_id" in changes:
                await check_parent(uow, ticket.id, ticket.project_id, ticket.parent_id)
            if "description" in changes:
                ticket.description_html = description_html
            if config is not None:
                changes |= await self._apply_fields(uow, principal, access, ticket, patch, config)
            if not changes:
                return ticket
            await self._save(uow, ticket, principal, changes, "ticket.updated")
            await uow.commit()
        return ticket

    async def _save(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        principal: Principal,
        changes: dict[str, dict[str, Any]],
        event: str,
        **extra: Any,
    ) -> None:
        now = datetime.now(UTC)
        ticket.touch(now)
        await uow.tickets.update(ticket)
        await uow.history.add(_history(ticket, principal.user_id, now, changes))
        await record(uow, event, ticket, principal, changes=changes, **extra)

    async def assign(
        self,
        principal: Principal,
        ticket_ref: str,
        assignee_id: uuid.UUID | None,
        *,
        expected_version: int | None = None,
    ) -> Ticket:
        found, access = await self.visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_ASSIGN)
        access.require_writable()
        await self.check_assignee(principal, access, assignee_id)
        async with self.uow() as uow:
            ticket = await self._locked(uow, found.id)
            check_version(ticket.version, expected_version)
            if ticket.assignee_id == assignee_id:
                return ticket
            changes = {
                "assignee_id": {"from": as_json(ticket.assignee_id), "to": as_json(assignee_id)}
            }
            ticket.assignee_id = assignee_id
            if assignee_id is not None:
                await uow.watchers.add(ticket.id, assignee_id, datetime.now(UTC))
            await self._save(uow, ticket, principal, changes, "ticket.assigned")
            await uow.commit()
        return ticket

    async def member_left(
        self, project_id: uuid.UUID, user_id: uuid.UUID, actor_id: uuid.UUID | None
    ) -> int:
        """Someone removed from a project stops watching its tickets and is unassigned
        from them, each unassignment with its history entry and `ticket.assigned` event
        (by whoever removed them), so an ex-member learns nothing more of the project.
        In batches of MEMBER_LEFT_BATCH tickets, a transaction each; running it again is
        harmless (the consumer may see the removal twice). How many were unassigned."""
        actor = Principal(
            user_id=actor_id or SYSTEM_ACTOR, session_id=SYSTEM_ACTOR, role="system", token=""
        )
        unassigned = 0
        while True:
            async with self.uow() as uow:
                await uow.watchers.remove_in_project(project_id, user_id)
                batch = await uow.tickets.assigned_in_project(
                    project_id, user_id, limit=MEMBER_LEFT_BATCH
                )
                for ticket in batch:
                    changes = {"assignee_id": {"from": as_json(user_id), "to": None}}
                    ticket.assignee_id = None
                    await self._save(uow, ticket, actor, changes, "ticket.assigned")
                await uow.commit()
            unassigned += len(batch)
            if len(batch) < MEMBER_LEFT_BATCH:
                break
        await self._clear_user_values(project_id, user_id, actor)
        return unassigned

    async def _clear_user_values(
        self, project_id: uuid.UUID, user_id: uuid.UUID, actor: Principal
    ) -> None:
        """The ex-member is cleared from the project's `user` fields, each ticket with its
        history entry and `ticket.updated`, in batches as the unassignment."""
        async with self.uow() as uow:
            config = await uow.configuration.load(project_id)
        for definition in config.fields:
            if definition.type is not FieldType.USER:
                continue
            while True:
                async with self.uow() as uow:
                    # The configuration lock (shared), as every write checked against it.
                    await uow.configuration.workflow(project_id, lock="share")
                    batch = await uow.configuration.tickets_where(
                        project_id,
                        field=definition,
                        values=(str(user_id),),
                        limit=MEMBER_LEFT_BATCH,
                    )
                    clear = functools.partial(drop_value, definition=definition)
                    await apply_moves(uow, actor, batch, clear, reindex=definition)
                    await uow.commit()
                if len(batch) < MEMBER_LEFT_BATCH:
                    break

    async def transitions(self, principal: Principal, ticket_ref: str) -> list[Transition]:
        ticket, access = await self.visible_ticket(principal, ticket_ref)
        async with self.uow() as uow:
            workflow = await uow.configuration.workflow(ticket.project_id)
        return available(access, principal.user_id, ticket.reporter_id, workflow, ticket.status)

    async def transition(
        self,
        principal: Principal,
        ticket_ref: str,
        to: str,
        resolution: Resolution | None,
        *,
        comment: str | None = None,
        expected_version: int | None = None,
    ) -> Ticket:
        found, access = await self.visible_ticket(principal, ticket_ref)
        access.require_writable()
        mentions = await mentions_in(self.projects, principal, access, comment) if comment else []
        comment_html = await to_html(comment) if comment else ""
        async with self.uow() as uow:
            # The configuration lock before the ticket's (see update_ticket).
            workflow = await uow.configuration.workflow(found.project_id, lock="share")
            ticket = await self._locked(uow, found.id)
            check_version(ticket.version, expected_version)
            new_resolution = plan_transition(
                access,
                principal.user_id,
                ticket.reporter_id,
                workflow,
                ticket.status,
                to,
                resolution,
            )
            await check_can_finish(uow, ticket, workflow.category(to))
            was_done = ticket.is_done
            changes: dict[str, dict[str, Any]] = {"status": {"from": ticket.status, "to": to}}
            old_resolution = ticket.resolution
            if old_resolution != (new_resolution.value if new_resolution else None):
                changes["resolution"] = {
                    "from": old_resolution,
                    "to": new_resolution.value if new_resolution else None,
                }
            ticket.status = to
            ticket.status_category = workflow.category(to)
            ticket.resolution = new_resolution.value if new_resolution else None
            await self._save(uow, ticket, principal, changes, "ticket.status_changed")
            await announce_unblocked(uow, ticket, was_done, principal)
            if comment:
                note = new_comment(ticket, principal, comment, comment_html, mentions)
                await store_comment(uow, ticket, principal, note)
            await uow.commit()
        return ticket

    async def delete_ticket(self, principal: Principal, ticket_ref: str) -> None:
        found, access = await self.visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_DELETE)
        access.require_writable()
        async with self.uow() as uow:
            ticket = await self._locked(uow, found.id)
            ticket.deleted_at = datetime.now(UTC)
            changes = {"deleted": {"from": False, "to": True}}
            await self._save(uow, ticket, principal, changes, "ticket.deleted")
            await uow.commit()

    async def restore_ticket(self, principal: Principal, ticket_ref: str) -> Ticket:
        async with self.uow() as uow:
            found = await self._load(uow, ticket_ref)
        if found is None:
            raise TicketNotFoundError("No such ticket.")
        try:
            access = await self.project_access(principal, str(found.project_id))
        except ProjectNotFoundError as exc:
            raise TicketNotFoundError("No such ticket.") from exc
        access.require(Permission.TICKET_DELETE)
        access.require_writable()
        async with self.uow() as uow:
            ticket = await uow.tickets.get(found.id, for_update=True)
            if ticket is None:
                raise TicketNotFoundError("No such ticket.")
            if ticket.deleted_at is None:
                return ticket
            if datetime.now(UTC) - ticket.deleted_at > RESTORE_WINDOW:
                raise RestoreExpiredError()
            ticket.deleted_at = None
            changes = {"deleted": {"from": True, "to": False}}
            await self._save(uow, ticket, principal, changes, "ticket.updated")
            await uow.commit()
        return ticket

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Purge the tickets deleted longer ago than the restore window, and those of
        projects deleted that long ago, PURGE_BATCH per transaction; how many. Their
        attachments' bytes go with the sweep (docs/adr/0041). Nothing is published: each
        ticket's `ticket.deleted` (or the project's `project.deleted`) told it already."""
        at = now or datetime.now(UTC)
        purged = 0
        while True:
            async with self.uow() as uow:
                batch = await uow.tickets.expired(at - RESTORE_WINDOW, limit=PURGE_BATCH)
                if batch:
                    await uow.tickets.purge(batch, at)
                await uow.commit()
            purged += len(batch)
            if len(batch) < PURGE_BATCH:
                if purged:
                    logger.info("purged %d tickets past the restore window", purged)
                return purged

    async def keep_purging(self, *, interval: float = PURGE_INTERVAL_SECONDS) -> None:
        """The background job: `purge_expired` every `interval` seconds (any replica)."""
        while True:
            try:
                await self.purge_expired()
            except Exception:
                logger.exception("purging expired tickets failed; retry in %.0f s", interval)
            await asyncio.sleep(interval)

    async def children(
        self, principal: Principal, ticket_ref: str, *, limit: int, cursor: str | None
    ) -> TicketList:
        """The ticket's live children, oldest first."""
        ticket, _ = await self.visible_ticket(principal, ticket_ref)
        query = TicketQuery(
            project_ids=(ticket.project_id,), parent_id=ticket.id, sort="created_at"
        )
        after = decode_cursor(cursor, 2) if cursor else None
        page = await self.reads.search(query, after=after, limit=limit, with_total=False)
        next_cursor = encode_cursor(page.next_after) if page.next_after else None
        return TicketList(page.tickets, next_cursor, None)

    async def history(
        self, principal: Principal, ticket_ref: str, *, limit: int, cursor: str | None
    ) -> tuple[list[HistoryEntry], str | None]:
        ticket, _ = await self.visible_ticket(principal, ticket_ref)
        after = decode_int_cursor(cursor) if cursor else None
        async with self.uow() as uow:
            rows = await uow.history.list(ticket.id, after=after, limit=limit + 1)
        if len(rows) > limit:
            return rows[:limit], encode_cursor([rows[limit - 1].id])
        return rows, None
