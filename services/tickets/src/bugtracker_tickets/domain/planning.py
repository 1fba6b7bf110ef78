"""Planning: milestones, relations between tickets and the parent/child hierarchy
(docs/adr/0039). Data and the rules that need no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from bugtracker_tickets.domain.tickets import Ticket

# A ticket hierarchy is at most this many levels deep (a root and four levels below it).
MAX_HIERARCHY_DEPTH: Final = 5
# How far a `blocks` chain is followed when a new relation is checked for a cycle: a
# chain longer than this is refused (422 invalid_relation) rather than walked.
MAX_BLOCKS_DEPTH: Final = 100
# At most this many unfinished dependencies are listed in a 409 unfinished_dependencies.
MAX_LISTED_DEPENDENCIES: Final = 20


class MilestoneState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class Milestone:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str
    due_date: date | None
    state: MilestoneState
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    version: int = 1
    # Maintained by the database in the transaction that changes a ticket (a trigger of
    # migration 0005): live tickets planned for it, and those in a done-category status.
    total: int = 0
    done: int = 0

    def touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def event_fields(self) -> dict[str, Any]:
        """The milestone as its events carry it (event_schemas.MilestoneData)."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "description": self.description,
            "due_date": self.due_date,
            "state": self.state.value,
            "progress": {"total": self.total, "done": self.done},
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted": self.deleted_at is not None,
        }


class RelationType(StrEnum):
    """A relation as a client names it, seen from one of its two tickets."""

    BLOCKS = "blocks"
    BLOCKED_BY = "blocked_by"
    DUPLICATES = "duplicates"
    DUPLICATED_BY = "duplicated_by"
    RELATES_TO = "relates_to"

    @property
    def inverse(self) -> RelationType:
        return _INVERSE[self]

    @property
    def stored(self) -> RelationType:
        """The type as stored (`blocks`, `duplicates` or `relates_to`); the other two are
        stored as their inverse with the tickets swapped."""
        return (
            self.inverse if self in (RelationType.BLOCKED_BY, RelationType.DUPLICATED_BY) else self
        )


_INVERSE = {
    RelationType.BLOCKS: RelationType.BLOCKED_BY,
    RelationType.BLOCKED_BY: RelationType.BLOCKS,
    RelationType.DUPLICATES: RelationType.DUPLICATED_BY,
    RelationType.DUPLICATED_BY: RelationType.DUPLICATES,
    RelationType.RELATES_TO: RelationType.RELATES_TO,
}


@dataclass(frozen=True)
class Relation:
    """One stored relation: `source` <type> `target` (`blocks`, `duplicates`, `relates_to`;
    a `relates_to` is stored with the smaller id as source, so it exists once)."""

    id: uuid.UUID
    source_id: uuid.UUID
    target_id: uuid.UUID
    type: RelationType
    created_at: datetime
    created_by: uuid.UUID

    @classmethod
    def between(
        cls,
        ticket_id: uuid.UUID,
        type: RelationType,
        other_id: uuid.UUID,
        *,
        created_at: datetime,
        created_by: uuid.UUID,
    ) -> Relation:
        """`ticket_id` <type> `other_id` in its stored form."""
        source, target = ticket_id, other_id
        if type is not type.stored or (type is RelationType.RELATES_TO and other_id < ticket_id):
            source, target = other_id, ticket_id
        return cls(uuid.uuid4(), source, target, type.stored, created_at, created_by)

    def seen_from(self, ticket_id: uuid.UUID) -> tuple[RelationType, uuid.UUID]:
        """The type as `ticket_id` sees it, and the other ticket."""
        if ticket_id == self.source_id:
            return self.type, self.target_id
        return self.type.inverse, self.source_id


@dataclass(frozen=True)
class TicketRef:
    """A ticket as a relation, a dependency or a child lists it."""

    id: uuid.UUID
    key: str
    title: str
    status: str
    project_id: uuid.UUID

    @classmethod
    def of(cls, ticket: Ticket) -> TicketRef:
        return cls(ticket.id, ticket.key, ticket.title, ticket.status, ticket.project_id)


@dataclass(frozen=True)
class RelatedTicket:
    """A relation seen from one ticket: its id, the type from this side, the other ticket."""

    id: uuid.UUID
    type: RelationType
    ticket: TicketRef
    created_at: datetime
