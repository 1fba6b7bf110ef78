"""Bulk changes: one change to up to 100 tickets of a project, all or nothing
(docs/adr/0039).

Every ticket is checked before anything is written; when any ticket cannot take the
change, nothing changes and the answer lists each ticket's error. Otherwise each ticket
gets exactly what a single change would give it (one version bump, a history entry per
field, its events), in the order the request lists the tickets, in one transaction. The
tickets are locked in id order (as every multi-ticket write locks them), so two bulk
changes over the same tickets wait for each other instead of deadlocking.

The rule that a ticket cannot be finished before its blockers and children is checked
after every ticket of the request is written, inside the transaction: closing an epic
and its children in one request works whatever order they are listed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.permissions import Permission
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.planning_rules import (
    announce_unblocked,
    check_can_finish,
    check_milestone,
)
from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.application.ticket_events import ticket_event
from bugtracker_tickets.application.use_cases import TicketUseCases, parse_ticket_ref
from bugtracker_tickets.domain.configuration import Workflow
from bugtracker_tickets.domain.errors import BulkRejectedError, TicketsError, TooManyLabelsError
from bugtracker_tickets.domain.tickets import (
    KEEP,
    HistoryEntry,
    Keep,
    Priority,
    ProjectAccess,
    Ticket,
    as_json,
)
from bugtracker_tickets.domain.workflow import Resolution, plan_transition

MAX_BULK_TICKETS = 100
MAX_LABELS = 20

# Which event tells of which field's change, in the order a ticket's events are written.
_EVENT_OF = {
    "status": "ticket.status_changed",
    "resolution": "ticket.status_changed",
    "assignee_id": "ticket.assigned",
    "priority": "ticket.updated",
    "labels": "ticket.updated",
    "milestone_id": "ticket.updated",
}
_EVENT_ORDER = ("ticket.updated", "ticket.assigned", "ticket.status_changed")


@dataclass(frozen=True)
class BulkChange:
    """What a bulk request sets on every ticket; `KEEP` and empty tuples change nothing."""

    status: str | None = None
    resolution: Resolution | None = None
    priority: Priority | None = None
    assignee_id: uuid.UUID | Keep | None = KEEP
    milestone_id: uuid.UUID | Keep | None = KEEP
    labels_add: tuple[str, ...] = ()
    labels_remove: tuple[str, ...] = ()

    def apply_to(
        self, ticket: Ticket, access: ProjectAccess, caller: uuid.UUID, workflow: Workflow
    ) -> dict[str, dict[str, Any]]:
        """Set the change on `ticket` (workflow and label rules checked, raising the
        ticket's error); the field changes as history and events record them."""
        before = {name: as_json(getattr(ticket, name)) for name in _EVENT_OF}
        if self.status is not None and self.status != ticket.status:
            resolution = plan_transition(
                access,
                caller,
                ticket.reporter_id,
                workflow,
                ticket.status,
                self.status,
                self.resolution,
            )
            ticket.status = self.status
            ticket.status_category = workflow.category(self.status)
            ticket.resolution = resolution.value if resolution else None
        if self.priority is not None:
            ticket.priority = self.priority
        if not isinstance(self.assignee_id, Keep):
            ticket.assignee_id = self.assignee_id
        if not isinstance(self.milestone_id, Keep):
            ticket.milestone_id = self.milestone_id
        if self.labels_add or self.labels_remove:
            kept = [label for label in ticket.labels if label not in self.labels_remove]
            labels = kept + [label for label in self.labels_add if label not in kept]
            if len(labels) > MAX_LABELS:
                raise TooManyLabelsError(f"A ticket has at most {MAX_LABELS} labels.")
            ticket.labels = labels
        after = {name: as_json(getattr(ticket, name)) for name in _EVENT_OF}
        return {
            name: {"from": before[name], "to": after[name]}
            for name in _EVENT_OF
            if before[name] != after[name]
        }


@dataclass(frozen=True)
class _Planned:
    ticket: Ticket
    changes: dict[str, dict[str, Any]]
    was_done: bool


def _error(ref: str, error: TicketsError) -> dict[str, str]:
    return {"ticket": ref, "code": error.code, "detail": str(error)}


def _not_found(ref: str) -> dict[str, str]:
    return {"ticket": ref, "code": "not_found", "detail": "No such ticket in this project."}


@dataclass
class BulkUseCases:
    uow: Callable[[], UnitOfWork]
    tickets: TicketUseCases

    async def bulk_change(
        self, principal: Principal, project_ref: str, refs: list[str], change: BulkChange
    ) -> list[Ticket]:
        """Apply `change` to every ticket named in `refs` (ids or keys) or to none; the
        tickets after the change, in the order of `refs`."""
        access = await self.tickets.project_access(principal, project_ref)
        access.require(Permission.TICKET_EDIT_ANY)
        access.require_writable()
        if not isinstance(change.assignee_id, Keep):
            await self.tickets.check_assignee(principal, access, change.assignee_id)
        bulk_id = uuid.uuid4()
        async with self.uow() as uow:
            # The configuration lock before any row lock (see TicketUseCases.update_ticket).
            workflow = await uow.configuration.workflow(access.project_id, lock="share")
            if not isinstance(change.milestone_id, Keep):
                await check_milestone(uow, access.project_id, change.milestone_id)
            found = await self._load(uow, access, refs)
            planned, errors = self._plan(found, refs, change, access, principal, workflow)
            if errors:
                raise BulkRejectedError(errors)
            changed = [plan for plan in planned if plan.changes]
            now = datetime.now(UTC)
            for plan in changed:
                plan.ticket.touch(now)
            await uow.tickets.update_many([plan.ticket for plan in changed])
            # With every ticket written: the dependencies as they are after the change.
            for ref, plan in zip(refs, planned, strict=True):
                if "status" not in plan.changes:
                    continue
                try:
                    await check_can_finish(uow, plan.ticket, plan.ticket.status_category)
                except TicketsError as exc:
                    errors.append(_error(ref, exc))
            if errors:
                raise BulkRejectedError(errors)
            await self._record(uow, changed, principal, now, bulk_id)
            await uow.commit()
        return [plan.ticket for plan in planned]

    @staticmethod
    async def _load(uow: UnitOfWork, access: ProjectAccess, refs: list[str]) -> dict[str, Ticket]:
        """The live tickets of the project named in `refs`, locked (in one statement), by
        the ref that named them."""
        parsed = {ref: parse_ticket_ref(ref) for ref in refs}
        wanted = [p for p in parsed.values() if p is not None]
        locked = await uow.tickets.get_many(wanted)
        by_ref: dict[uuid.UUID | str, Ticket] = {t.id: t for t in locked} | {
            t.key: t for t in locked
        }
        found: dict[str, Ticket] = {}
        for ref, named in parsed.items():
            ticket = by_ref.get(named) if named is not None else None
            if (
                ticket is not None
                and ticket.deleted_at is None
                and ticket.project_id == access.project_id
            ):
                found[ref] = ticket
        return found

    @staticmethod
    def _plan(
        found: dict[str, Ticket],
        refs: list[str],
        change: BulkChange,
        access: ProjectAccess,
        principal: Principal,
        workflow: Workflow,
    ) -> tuple[list[_Planned], list[dict[str, str]]]:
        planned: list[_Planned] = []
        errors: list[dict[str, str]] = []
        seen: set[uuid.UUID] = set()
        for ref in refs:
            ticket = found.get(ref)
            if ticket is None:
                errors.append(_not_found(ref))
                continue
            if ticket.id in seen:
                errors.append(
                    {"ticket": ref, "code": "duplicate", "detail": "The ticket is listed twice."}
                )
                continue
            seen.add(ticket.id)
            was_done = ticket.is_done
            try:
                changes = change.apply_to(ticket, access, principal.user_id, workflow)
            except TicketsError as exc:
                errors.append(_error(ref, exc))
                continue
            planned.append(_Planned(ticket, changes, was_done))
        return planned, errors

    @staticmethod
    async def _record(
        uow: UnitOfWork,
        changed: list[_Planned],
        principal: Principal,
        now: datetime,
        bulk_id: uuid.UUID,
    ) -> None:
        """Every changed ticket's history entries, new watcher and events, as the single
        changes write them, ticket by ticket in the request's order: each kind of row in
        one statement for all the tickets."""
        await uow.history.add(
            [
                HistoryEntry(plan.ticket.id, now, principal.user_id, name, c["from"], c["to"])
                for plan in changed
                for name, c in plan.changes.items()
            ]
        )
        assigned = [plan.ticket for plan in changed if "assignee_id" in plan.changes]
        await uow.watchers.add_many(
            [(t.id, t.assignee_id) for t in assigned if t.assignee_id is not None], now
        )
        watchers = await uow.watchers.list_many([plan.ticket.id for plan in changed])
        # The bulk as each assignment event tells it: how many tickets it assigned.
        bulk = {"id": bulk_id, "size": len(assigned)}
        events = []
        for plan in changed:
            ticket = plan.ticket
            for event in _EVENT_ORDER:
                own = {name: c for name, c in plan.changes.items() if _EVENT_OF[name] == event}
                if own:
                    extra: dict[str, Any] = {"changes": own}
                    if event == "ticket.assigned":
                        extra["bulk"] = bulk
                    events.append(
                        ticket_event(event, ticket, principal, watchers[ticket.id], **extra)
                    )
        await uow.outbox.add_many(events)
        for plan in changed:
            await announce_unblocked(uow, plan.ticket, plan.was_done, principal)
