"""Moving a ticket through its project's workflow (docs/adr/0040): which status may
follow which, who may make the move, and the resolution it leaves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from bugtracker_tickets.domain.configuration import Category, Workflow, may_make
from bugtracker_tickets.domain.errors import (
    ForbiddenError,
    InvalidTransitionError,
    ResolutionRequiredError,
)
from bugtracker_tickets.domain.tickets import ProjectAccess


class Resolution(StrEnum):
    FIXED = "fixed"
    DUPLICATE = "duplicate"
    WONT_FIX = "wont_fix"
    CANNOT_REPRODUCE = "cannot_reproduce"
    INVALID = "invalid"


@dataclass(frozen=True)
class Transition:
    to: str
    requires_resolution: bool


def available(
    access: ProjectAccess,
    caller_id: uuid.UUID,
    reporter_id: uuid.UUID,
    workflow: Workflow,
    current: str,
) -> list[Transition]:
    """The transitions this caller may make from `current` right now."""
    if access.archived:
        return []
    own = caller_id == reporter_id
    found = []
    for move in workflow.from_status(current):
        target = workflow.status(move.to)
        if target is not None and may_make(move.min_role, access.permissions, own_ticket=own):
            found.append(Transition(to=move.to, requires_resolution=target.requires_resolution))
    return found


def plan_transition(
    access: ProjectAccess,
    caller_id: uuid.UUID,
    reporter_id: uuid.UUID,
    workflow: Workflow,
    current: str,
    to: str,
    resolution: Resolution | None,
) -> Resolution | None:
    """Check a transition and return the ticket's resolution after it.

    Moving into a done-category status resolves as given, else as fixed (a status that
    requires a resolution, like the default `closed`, needs one given); any other target
    (reopening included) clears it.
    """
    move = workflow.transition(current, to)
    target = workflow.status(to)
    if move is None or target is None:
        allowed = tuple(t.to for t in workflow.from_status(current))
        raise InvalidTransitionError(current, to, allowed)
    if not may_make(move.min_role, access.permissions, own_ticket=caller_id == reporter_id):
        raise ForbiddenError("Your role in this project does not allow this transition.")
    if target.category is not Category.DONE:
        return None
    if resolution is None and target.requires_resolution:
        raise ResolutionRequiredError(f"Moving a ticket to {to} needs a resolution.")
    return resolution or Resolution.FIXED
