"""Tickets use cases. Each one owns a unit of work and commits it at most once.

Who may do what comes from the projects service (the caller's role in the project);
a caller who may not see a project gets the same 404 as for a ticket that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bugtracker_shared.events import CloudEvent, new_event
from bugtracker_shared.pagination import Listing, decode_time_id_cursor, time_id_key
from bugtracker_shared.permissions import Permission
from bugtracker_shared.request_context import current_request_id
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import ProjectDirectory, TicketFilter, UnitOfWork
from bugtracker_tickets.domain.errors import (
    AssigneeNotMemberError,
    ProjectNotFoundError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.tickets import (
    TICKET_KEY,
    Priority,
    ProjectAccess,
    Status,
    Ticket,
    TicketType,
    ticket_key,
    visible,
)
from bugtracker_tickets.domain.tickets import (
    project_ref as project_ref_of,
)

SERVICE = "tickets"


@dataclass(frozen=True)
class NewTicket:
    title: str
    description: str = ""
    type: TicketType = TicketType.BUG
    priority: Priority = Priority.MEDIUM
    labels: tuple[str, ...] = ()
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AssigneeQuery:
    """`assignee=me`, `assignee=none` or `assignee=<user id>`."""

    me: bool = False
    none: bool = False
    user_id: uuid.UUID | None = None


@dataclass
class TicketUseCases:
    uow: Callable[[], UnitOfWork]
    projects: ProjectDirectory

    async def _access(self, principal: Principal, project_ref: str) -> ProjectAccess:
        ref = project_ref_of(project_ref)
        return visible(await self.projects.access(ref, token=principal.token))

    async def _check_assignee(
        self, principal: Principal, access: ProjectAccess, assignee_id: uuid.UUID | None
    ) -> None:
        if assignee_id is not None and not await self.projects.is_member(
            access.project_id, assignee_id, token=principal.token
        ):
            raise AssigneeNotMemberError("The assignee must be a member of the project.")

    def _event(
        self, name: str, ticket: Ticket, principal: Principal, **extra: object
    ) -> CloudEvent:
        return new_event(
            name,
            service=SERVICE,
            subject=ticket.id,
            sequence=ticket.version,
            data=ticket.event_data() | extra,
            actor_id=principal.user_id,
            correlation_id=current_request_id(),
        )

    async def create_ticket(self, principal: Principal, project_ref: str, new: NewTicket) -> Ticket:
        access = await self._access(principal, project_ref)
        access.require(Permission.TICKET_CREATE)
        access.require_writable()
        await self._check_assignee(principal, access, new.assignee_id)
        now = datetime.now(UTC)
        async with self.uow() as uow:
            number = await uow.tickets.next_number(access.project_id)
            ticket = Ticket(
                id=uuid.uuid4(),
                project_id=access.project_id,
                key=ticket_key(access.project_key, number),
                number=number,
                title=new.title,
                description=new.description,
                type=new.type,
                priority=new.priority,
                status=Status.OPEN,
                reporter_id=principal.user_id,
                assignee_id=new.assignee_id,
                labels=list(new.labels),
                due_date=new.due_date,
                created_at=now,
                updated_at=now,
            )
            await uow.tickets.add(ticket)
            await uow.outbox.add(self._event("ticket.created", ticket, principal))
            if ticket.assignee_id is not None:
                changes = {"assignee_id": {"from": None, "to": str(ticket.assignee_id)}}
                await uow.outbox.add(
                    self._event("ticket.assigned", ticket, principal, changes=changes)
                )
            await uow.commit()
        return ticket

    async def _visible_ticket(
        self, principal: Principal, ticket_ref: str
    ) -> tuple[Ticket, ProjectAccess]:
        async with self.uow() as uow:
            if TICKET_KEY.match(ticket_ref.upper()):
                ticket = await uow.tickets.get_by_key(ticket_ref.upper())
            else:
                try:
                    ticket = await uow.tickets.get(uuid.UUID(ticket_ref))
                except ValueError:
                    ticket = None
        if ticket is None:
            raise TicketNotFoundError("No such ticket.")
        try:
            access = await self._access(principal, str(ticket.project_id))
        except ProjectNotFoundError as exc:
            raise TicketNotFoundError("No such ticket.") from exc
        return ticket, access

    async def get_ticket(self, principal: Principal, ticket_ref: str) -> Ticket:
        ticket, _ = await self._visible_ticket(principal, ticket_ref)
        return ticket

    async def list_tickets(
        self,
        principal: Principal,
        project_ref: str,
        *,
        statuses: tuple[Status, ...],
        assignee: AssigneeQuery | None,
        limit: int,
        cursor: str | None,
    ) -> Listing[Ticket]:
        after = decode_time_id_cursor(cursor) if cursor else None
        access = await self._access(principal, project_ref)
        assignee = assignee or AssigneeQuery()
        where = TicketFilter(
            project_id=access.project_id,
            statuses=statuses,
            assignee_id=principal.user_id if assignee.me else assignee.user_id,
            unassigned=assignee.none,
        )
        async with self.uow() as uow:
            rows = await uow.tickets.list(where, after=after, limit=limit + 1)
        return Listing.from_overfetch(rows, limit, lambda t: time_id_key(t.updated_at, t.id))

    async def assign(
        self, principal: Principal, ticket_ref: str, assignee_id: uuid.UUID | None
    ) -> Ticket:
        found, access = await self._visible_ticket(principal, ticket_ref)
        access.require(Permission.TICKET_ASSIGN)
        access.require_writable()
        await self._check_assignee(principal, access, assignee_id)
        async with self.uow() as uow:
            ticket = await uow.tickets.get_for_update(found.id)
            if ticket is None:
                raise TicketNotFoundError("No such ticket.")
            if ticket.assignee_id == assignee_id:
                return ticket
            previous = ticket.assignee_id
            ticket.assignee_id = assignee_id
            ticket.version += 1
            ticket.updated_at = datetime.now(UTC)
            await uow.tickets.update_assignee(ticket)
            changes = {
                "assignee_id": {
                    "from": str(previous) if previous else None,
                    "to": str(assignee_id) if assignee_id else None,
                }
            }
            await uow.outbox.add(self._event("ticket.assigned", ticket, principal, changes=changes))
            await uow.commit()
        return ticket
