"""The ticket workflow: which status may follow which, who may move it, and resolutions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from bugtracker_shared.permissions import Permission

from bugtracker_tickets.domain.errors import (
    ForbiddenError,
    InvalidTransitionError,
    ResolutionRequiredError,
)
from bugtracker_tickets.domain.tickets import ProjectAccess, Status


class Resolution(StrEnum):
    FIXED = "fixed"
    DUPLICATE = "duplicate"
    WONT_FIX = "wont_fix"
    CANNOT_REPRODUCE = "cannot_reproduce"
    INVALID = "invalid"


TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.OPEN: (Status.IN_PROGRESS, Status.CLOSED),
    Status.IN_PROGRESS: (Status.OPEN, Status.IN_REVIEW, Status.DONE, Status.CLOSED),
    Status.IN_REVIEW: (Status.IN_PROGRESS, Status.DONE, Status.CLOSED),
    Status.DONE: (Status.OPEN, Status.CLOSED),
    Status.CLOSED: (Status.OPEN,),
}

# A reporter may close the tickets they reported, and reopen them.
_REPORTER_TARGETS = frozenset({Status.CLOSED, Status.OPEN})


@dataclass(frozen=True)
class Transition:
    to: Status
    requires_resolution: bool


def may_move(
    access: ProjectAccess, caller_id: uuid.UUID, reporter_id: uuid.UUID, to: Status
) -> bool:
    if Permission.TICKET_TRANSITION_ANY in access.permissions:
        return True
    return (
        Permission.TICKET_EDIT_OWN in access.permissions
        and caller_id == reporter_id
        and to in _REPORTER_TARGETS
    )


def available(
    access: ProjectAccess, caller_id: uuid.UUID, reporter_id: uuid.UUID, current: Status
) -> list[Transition]:
    """The transitions this caller may make from `current` right now."""
    if access.archived:
        return []
    return [
        Transition(to=to, requires_resolution=to is Status.CLOSED)
        for to in TRANSITIONS[current]
        if may_move(access, caller_id, reporter_id, to)
    ]


def plan_transition(
    access: ProjectAccess,
    caller_id: uuid.UUID,
    reporter_id: uuid.UUID,
    current: Status,
    to: Status,
    resolution: Resolution | None,
) -> Resolution | None:
    """Check a transition and return the ticket's resolution after it.

    `done` resolves as fixed unless told otherwise, `closed` needs a resolution, and any
    other target (reopening included) clears it.
    """
    allowed = TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransitionError(current, to, allowed)
    if not may_move(access, caller_id, reporter_id, to):
        raise ForbiddenError("Your role in this project does not allow this transition.")
    if to is Status.DONE:
        return resolution or Resolution.FIXED
    if to is Status.CLOSED:
        if resolution is None:
            raise ResolutionRequiredError("Closing a ticket needs a resolution.")
        return resolution
    return None
