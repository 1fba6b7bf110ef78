"""The planning rules every ticket write keeps (docs/adr/0039), shared by the single
changes (TicketUseCases) and bulk changes: a milestone and a parent of the ticket's own
project, a hierarchy without cycles and at most MAX_HIERARCHY_DEPTH deep, no finishing
before the blockers and children are finished, and `ticket.unblocked` when a ticket's
last unfinished blocker is finished. Each runs inside the caller's unit of work."""

from __future__ import annotations

import uuid

from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.application.ticket_events import other_ticket, record
from bugtracker_tickets.domain.configuration import Category
from bugtracker_tickets.domain.errors import (
    InvalidMilestoneError,
    InvalidParentError,
    UnfinishedDependenciesError,
)
from bugtracker_tickets.domain.planning import (
    MAX_HIERARCHY_DEPTH,
    MAX_LISTED_DEPENDENCIES,
    TicketRef,
)
from bugtracker_tickets.domain.tickets import Ticket


async def check_milestone(
    uow: UnitOfWork, project_id: uuid.UUID, milestone_id: uuid.UUID | None
) -> None:
    """None, or a live milestone of the project (422 invalid_milestone otherwise). The
    milestone row is locked (shared) so that it cannot be deleted before the commit."""
    if milestone_id is None:
        return
    milestone = await uow.milestones.get(milestone_id, for_update=True)
    if milestone is None or milestone.deleted_at is not None or milestone.project_id != project_id:
        raise InvalidMilestoneError()


async def check_parent(
    uow: UnitOfWork, ticket_id: uuid.UUID | None, project_id: uuid.UUID, parent_id: uuid.UUID | None
) -> None:
    """None, or a live ticket of the same project that is not the ticket or below it, with
    the whole hierarchy at most MAX_HIERARCHY_DEPTH deep (422 invalid_parent otherwise).
    `ticket_id` is None for a ticket being created (it has no children yet)."""
    if parent_id is None:
        return
    await uow.tickets.lock_hierarchy(project_id)
    parent = await uow.tickets.get(parent_id)
    if parent is None or parent.deleted_at is not None or parent.project_id != project_id:
        raise InvalidParentError("The parent must be a ticket of the same project.")
    if parent_id == ticket_id:
        raise InvalidParentError("A ticket cannot be its own parent.")
    above = await uow.tickets.ancestors(parent_id, limit=MAX_HIERARCHY_DEPTH)
    if ticket_id is not None and ticket_id in above:
        raise InvalidParentError("The parent is below this ticket: that would be a cycle.")
    height = 1
    if ticket_id is not None:
        height = await uow.tickets.subtree_height(ticket_id, limit=MAX_HIERARCHY_DEPTH)
    # The parent's ancestors, the parent itself, then the ticket's own levels.
    if len(above) + 1 + height > MAX_HIERARCHY_DEPTH:
        raise InvalidParentError(f"Tickets nest at most {MAX_HIERARCHY_DEPTH} levels deep.")


def _listed(refs: list[TicketRef]) -> list[dict[str, str]]:
    return [{"id": str(r.id), "key": r.key, "status": r.status} for r in refs]


async def check_can_finish(uow: UnitOfWork, ticket: Ticket, to: Category) -> None:
    """A ticket with an unfinished blocker or child cannot move to a done-category status
    (409 unfinished_dependencies, listing them)."""
    if to is not Category.DONE:
        return
    blockers = await uow.relations.unfinished_blockers(ticket.id, limit=MAX_LISTED_DEPENDENCIES)
    children = await uow.tickets.unfinished_children(ticket.id, limit=MAX_LISTED_DEPENDENCIES)
    if blockers or children:
        raise UnfinishedDependenciesError(_listed(blockers), _listed(children))


async def announce_unblocked(
    uow: UnitOfWork, blocker: Ticket, was_done: bool, principal: Principal
) -> None:
    """After `blocker` moved (from a done-category status when `was_done`) to a
    done-category one: `ticket.unblocked` for each ticket it blocks whose last unfinished
    blocker it was."""
    if was_done or not blocker.is_done:
        return
    for ticket in await uow.relations.unblocked_by(blocker.id):
        await record(
            uow,
            "ticket.unblocked",
            ticket,
            principal,
            blocker=other_ticket(blocker),
        )
