"""What the use cases need from the outside world; infrastructure implements these."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.ports import EventSink, Transaction
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.domain.configuration import (
    Category,
    FieldDef,
    TicketTypes,
    Workflow,
)
from bugtracker_tickets.domain.planning import (
    Milestone,
    MilestoneState,
    RelatedTicket,
    Relation,
    TicketRef,
)
from bugtracker_tickets.domain.query_language import Comparison
from bugtracker_tickets.domain.saved_filters import SavedFilter
from bugtracker_tickets.domain.tickets import (
    Comment,
    HistoryEntry,
    Priority,
    ProjectAccess,
    Ticket,
)


@dataclass(frozen=True)
class MemberInfo:
    user_id: uuid.UUID
    display_name: str
    email: str | None


class ProjectDirectory(Protocol):
    """Projects and memberships: this service's view of them, or the projects service
    asked with the caller's own token (ADR 0023)."""

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        """The caller's access to the project (by id or key); None when they may not see it."""
        ...

    async def is_member(
        self, project_id: uuid.UUID, user_id: uuid.UUID, caller: Principal
    ) -> bool: ...

    async def members(self, project_id: uuid.UUID, caller: Principal) -> list[MemberInfo]: ...

    async def visible_projects(self, caller: Principal) -> list[uuid.UUID]:
        """Every project the caller may read (an admin: every project)."""
        ...


@dataclass(frozen=True)
class FieldFilter:
    """One `field.<key>` filter: tickets whose value of one of `field_ids` (the key's
    field in each project listed) is one of `equals` and within `gte`..`lte`."""

    field_ids: tuple[uuid.UUID, ...]
    column: Literal["value", "number", "day"]
    equals: tuple[Any, ...] = ()
    gte: Any = None
    lte: Any = None
    negated: bool = False


# The conditions a typed `query` compiles to (docs/adr/0045), each a plain value the
# search turns into SQL: never text built into a statement.
TicketColumn = Literal[
    "status",
    "status_category",
    "type",
    "priority",
    "assignee_id",
    "reporter_id",
    "milestone_id",
    "parent_id",
]
OrderedColumn = Literal["created_at", "updated_at", "due_date", "priority_rank"]


@dataclass(frozen=True)
class Among:
    """`column` is one of `values` (None stands for "not set"), or with `negated` none
    of them (a ticket without a value is then among the matches)."""

    column: TicketColumn
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class Compare:
    column: OrderedColumn
    op: Comparison
    value: Any


@dataclass(frozen=True)
class WithLabels:
    """Tickets with any of `labels`, or with `negated` none of them."""

    labels: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class Flag:
    """`blocked`: at least one unfinished blocker; `attachment`: at least one file."""

    name: Literal["blocked", "attachment"]
    negated: bool = False


Condition = Among | Compare | WithLabels | Flag


@dataclass(frozen=True)
class TicketQuery:
    project_ids: tuple[uuid.UUID, ...]
    statuses: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    types: tuple[str, ...] = ()
    fields: tuple[FieldFilter, ...] = ()
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    reporter_id: uuid.UUID | None = None
    labels: tuple[str, ...] = ()
    text: str | None = None
    due_before: date | None = None
    updated_since: datetime | None = None
    milestone_id: uuid.UUID | None = None
    no_milestone: bool = False
    parent_id: uuid.UUID | None = None
    no_parent: bool = False
    blocked: bool = False
    """Only tickets with at least one unfinished (live, not done) blocker."""
    conditions: tuple[Condition, ...] = ()
    """What a typed `query` asks for besides the fields above, all of it (AND)."""
    sort: str = "-updated_at"
    """One of created_at, updated_at, priority, due_date (descending with `-`), or
    `rank` (full-text relevance, only with `text`)."""


@dataclass(frozen=True)
class Page:
    tickets: list[Ticket]
    next_after: list[Any] | None
    total: int | None = None


class TicketReads(Protocol):
    """The ticket read at the start of every ticket request, outside a unit of work:
    by id or by (upper-case) key, deleted ones included; None when there is none.

    With it, in the same read, the caller's access to the ticket's project when the
    service's own membership view grants it (docs/adr/0023); None for the access means
    "ask the ProjectDirectory"."""

    async def get(
        self, ref: uuid.UUID | str, caller: Principal
    ) -> tuple[Ticket, ProjectAccess | None] | None: ...

    async def search(
        self, query: TicketQuery, *, after: list[Any] | None, limit: int, with_total: bool
    ) -> Page:
        """Live tickets matching `query` in its order, after the keyset `after` (each
        statement one consistent snapshot; the total, when asked, counted separately)."""
        ...

    async def count(self, query: TicketQuery) -> int:
        """How many live tickets match `query`."""
        ...


class TicketRepository(Protocol):
    async def expired(self, cutoff: datetime, *, limit: int) -> list[uuid.UUID]:
        """Up to `limit` tickets to purge: deleted before `cutoff`, or of a project this
        service learned was deleted before it."""
        ...

    async def purge(self, ticket_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """Delete these tickets for good, with everything that is theirs (comments,
        history, watchers, relations, attachments, field values). Live ones are first
        marked deleted, so that the counters of the tickets they block and of their
        milestones count them out; their children lose their parent."""
        ...

    async def create(
        self,
        draft: Ticket,
        project_key: str,
        watchers: list[uuid.UUID],
        events: list[CloudEvent],
    ) -> int:
        """Give `draft` the project's next number (gapless: the counter stays locked
        until the transaction ends) and write it with its first watchers and its events
        (whose `data.key` gets the ticket's key); returns the number."""
        ...

    async def get(self, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None: ...
    async def get_by_key(self, key: str) -> Ticket | None: ...
    async def update(self, ticket: Ticket) -> None: ...
    async def assigned_in_project(
        self, project_id: uuid.UUID, user_id: uuid.UUID, *, limit: int
    ) -> list[Ticket]:
        """Up to `limit` live tickets of the project assigned to the user, locked."""
        ...

    async def get_many(self, refs: Sequence[uuid.UUID | str]) -> list[Ticket]:
        """The tickets with these ids or (upper-case) keys, deleted ones included, locked,
        in id order (the order every multi-ticket write locks in, so two of them cannot
        deadlock); one statement."""
        ...

    async def update_many(self, tickets: Sequence[Ticket]) -> None:
        """`update` for each ticket, as one pipelined statement."""
        ...

    async def lock_hierarchy(self, project_id: uuid.UUID) -> None:
        """Serialize changes of `parent_id` in the project until the transaction ends
        (two concurrent moves could otherwise make a cycle that neither sees)."""
        ...

    async def ancestors(self, ticket_id: uuid.UUID, *, limit: int) -> list[uuid.UUID]:
        """The ticket's parent, its parent's parent... nearest first, at most `limit`."""
        ...

    async def subtree_height(self, ticket_id: uuid.UUID, *, limit: int) -> int:
        """Levels of the ticket's live subtree, the ticket itself counting 1 (counted up to
        `limit` + 1 at most)."""
        ...

    async def unfinished_children(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        """Live children not in a done-category status."""
        ...

    async def in_milestone(self, milestone_id: uuid.UUID, *, limit: int) -> list[Ticket]:
        """Up to `limit` tickets (deleted ones included) that name the milestone, locked,
        skipping rows another transaction holds."""
        ...


class MilestoneRepository(Protocol):
    async def add(self, milestone: Milestone) -> None:
        """Raises MilestoneExistsError when a live milestone of the project has the name."""
        ...

    async def get(self, milestone_id: uuid.UUID, *, for_update: bool = False) -> Milestone | None:
        """Deleted ones included."""
        ...

    async def update(self, milestone: Milestone) -> None:
        """Raises MilestoneExistsError as `add`; the counts are the database's."""
        ...

    async def deleted_with_tickets(self, *, limit: int) -> list[uuid.UUID]:
        """Deleted milestones (oldest deletion first) some ticket still names."""
        ...

    async def purge_cleared(self) -> int:
        """Remove deleted milestones no ticket names any more; how many."""
        ...

    async def named(
        self, project_ids: Sequence[uuid.UUID], names: Sequence[str]
    ) -> dict[str, list[uuid.UUID]]:
        """The live milestones of the projects with one of the names (case-insensitive),
        by lower-cased name."""
        ...

    # Last: below it, `list` in annotations would name this method, not the builtin.
    async def list(
        self,
        project_id: uuid.UUID,
        *,
        states: tuple[MilestoneState, ...],
        after: list[Any] | None,
        limit: int,
    ) -> tuple[list[Milestone], list[Any] | None]:
        """Live milestones by due date (none last), name, id; the keyset of the next page."""
        ...


class RelationRepository(Protocol):
    async def add(self, relation: Relation) -> bool:
        """False (and nothing written) when the same relation exists."""
        ...

    async def get(self, relation_id: uuid.UUID) -> Relation | None: ...
    async def remove(self, relation_id: uuid.UUID) -> None: ...
    async def lock_graph(self) -> None:
        """Serialize `blocks` insertions until the transaction ends (two concurrent ones
        could otherwise close a cycle that neither sees)."""
        ...

    async def exists_between(self, a: uuid.UUID, b: uuid.UUID) -> list[Relation]:
        """Every relation between the two tickets, either direction."""
        ...

    async def blocks_path(
        self, start: uuid.UUID, goal: uuid.UUID, *, max_depth: int
    ) -> bool | None:
        """Whether `start` blocks `goal` through a chain of `blocks` relations of at most
        `max_depth` steps; None when chains from `start` go deeper than that (unknown)."""
        ...

    async def of_ticket(
        self,
        ticket_id: uuid.UUID,
        *,
        project_ids: tuple[uuid.UUID, ...] | None,
        after: list[Any] | None,
        limit: int,
    ) -> tuple[list[RelatedTicket], list[Any] | None]:
        """The ticket's relations seen from it, to live tickets of `project_ids` (None:
        any project), oldest first; the keyset of the next page."""
        ...

    async def unfinished_blockers(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        """Live tickets that block it and are not in a done-category status."""
        ...

    async def unblocked_by(self, blocker_id: uuid.UUID) -> list[Ticket]:
        """Live unfinished tickets that `blocker_id` blocks and that have no other
        unfinished blocker (called once the blocker is finished, in its transaction)."""
        ...


class CommentRepository(Protocol):
    async def add(self, comment: Comment) -> None: ...
    async def get(self, comment_id: uuid.UUID, *, for_update: bool = False) -> Comment | None: ...
    async def update(self, comment: Comment) -> None: ...
    async def list(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Comment]: ...


class HistoryRepository(Protocol):
    async def add(self, entries: list[HistoryEntry]) -> None: ...
    async def list(
        self, ticket_id: uuid.UUID, *, after: int | None, limit: int
    ) -> list[HistoryEntry]: ...


class WatcherRepository(Protocol):
    async def list_many(self, ticket_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        """`list` of each ticket (every one of them a key), in one statement."""
        ...

    async def add(self, ticket_id: uuid.UUID, user_id: uuid.UUID, since: datetime) -> bool:
        """True when the user was not watching before."""
        ...

    async def add_many(
        self, watches: Sequence[tuple[uuid.UUID, uuid.UUID]], since: datetime
    ) -> None:
        """Each (ticket, user) watches from `since` unless it already does; one statement."""
        ...

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool: ...
    async def list(self, ticket_id: uuid.UUID) -> list[uuid.UUID]: ...

    async def remove_in_project(self, project_id: uuid.UUID, user_id: uuid.UUID) -> int:
        """The user stops watching every ticket of the project; how many they watched."""
        ...


@dataclass(frozen=True)
class IdempotencyClaim:
    user_id: uuid.UUID
    scope: str
    key: str
    fingerprint: str
    resource_id: uuid.UUID = field(default_factory=uuid.uuid4)


class IdempotencyStore(Protocol):
    async def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        """Record the claim; when the key was claimed before (within 24 h), the earlier
        claim instead, and nothing is recorded."""
        ...


@dataclass(frozen=True)
class TrackerConfig:
    """A project's configuration as ticket writes check it (docs/adr/0040)."""

    workflow: Workflow
    types: TicketTypes
    fields: tuple[FieldDef, ...]
    """The live custom fields, in their order."""

    def field(self, key: str) -> FieldDef | None:
        return next((f for f in self.fields if f.key == key), None)


ConfigLock = Literal["share", "exclusive"]


class ConfigurationRepository(Protocol):
    async def load(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> TrackerConfig:
        """The project's configuration (the defaults where it has none stored). With
        `lock`, the project's configuration lock is taken first and held to the end of
        the transaction: `share` by every ticket write that checks against it, so that
        it reads the configuration a change committed last; `exclusive` by a change."""
        ...

    async def workflow(self, project_id: uuid.UUID, *, lock: ConfigLock | None = None) -> Workflow:
        """The project's workflow alone, as `load` (a transition needs no fields)."""
        ...

    async def save_workflow(self, project_id: uuid.UUID, workflow: Workflow) -> None: ...
    async def save_types(self, project_id: uuid.UUID, types: TicketTypes) -> None: ...

    async def fields(self, project_id: uuid.UUID) -> list[FieldDef]:
        """The live custom fields, in their order."""
        ...

    async def field_ids(self, project_ids: Sequence[uuid.UUID], key: str) -> list[FieldDef]:
        """The live fields called `key` in these projects (for the list filters)."""
        ...

    async def field_keys(self, project_ids: Sequence[uuid.UUID]) -> list[str]:
        """The keys of the live fields of these projects, each once, in order."""
        ...

    async def add_field(self, definition: FieldDef) -> None:
        """Raises FieldExistsError when the project has (or is still purging) the key."""
        ...

    async def update_field(self, definition: FieldDef) -> None: ...

    async def purge_deleted_field(self, *, batch: int) -> bool:
        """Removes the values of one deleted field from up to `batch` tickets, and its
        definition once none is left; False when there was nothing to purge."""
        ...

    async def index_values(
        self, ticket_id: uuid.UUID, values: Sequence[tuple[FieldDef, object]]
    ) -> None:
        """The filter index of these fields of the ticket: the given values replace
        whatever it held for them (None: no value)."""
        ...

    async def status_counts(self, project_id: uuid.UUID, statuses: Sequence[str]) -> dict[str, int]:
        """How many tickets (deleted ones too) are in each of `statuses` (only those > 0)."""
        ...

    async def type_counts(self, project_id: uuid.UUID, types: Sequence[str]) -> dict[str, int]: ...

    async def option_counts(self, field: FieldDef, values: Sequence[str]) -> dict[str, int]: ...

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
        """Up to `limit` tickets of the project (deleted ones too), locked, in one of
        `statuses` (and then not in `other_category`), of one of `types`, of none of
        `types_outside`, with a value in `field`
        (one of `values`, when given)."""
        ...


@dataclass(frozen=True)
class StoredBlob:
    """Bytes the blob store holds under their sha256 (hex), and the first of them (for
    sniffing the content type)."""

    sha256: str
    size: int
    head: bytes


class BlobTooLargeError(Exception):
    """The bytes went past the store's `max_bytes`; nothing of them is kept."""


class BlobStore(Protocol):
    """Where attachments' bytes live, content-addressed (docs/adr/0041)."""

    async def put(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        """Store the bytes as they come (never all in memory) under their sha256, and only
        once they are complete: an upload cut short leaves no blob, at most a temporary
        file the sweep removes. The same bytes twice are stored once."""
        ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `start`..`end` (inclusive; None: to the last), in chunks."""
        ...

    async def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, disposition: str
    ) -> str | None:
        """A short-lived URL the client may download the bytes from directly with these
        headers, or None when the store has no such thing (then the service streams)."""
        ...

    async def delete(self, sha256: str, *, stored_before: datetime) -> None:
        """Remove the blob if it was last stored before `stored_before` (an upload of the
        same bytes since then stores it again and keeps it)."""
        ...

    async def older_than(self, cutoff: datetime) -> list[str]:
        """The sha256 of every blob stored before `cutoff` (for the sweep), and removes
        temporary files of uploads abandoned before it."""
        ...


class AttachmentRepository(Protocol):
    async def add(self, attachment: Attachment) -> None: ...
    async def get(self, attachment_id: uuid.UUID) -> Attachment | None: ...
    async def delete(self, attachment_id: uuid.UUID) -> bool:
        """False when there was no such row (deleted meanwhile)."""
        ...

    async def of_ticket(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Attachment]:
        """Oldest first."""
        ...

    async def bytes_in_project(self, project_id: uuid.UUID) -> int:
        """What the project's attachments take, each counted (after locking the project's
        attachments against concurrent uploads until the transaction ends)."""
        ...

    async def unreferenced(self, sha256s: Sequence[str]) -> list[str]:
        """Those of `sha256s` that no attachment names."""
        ...


class SavedFilterRepository(Protocol):
    async def add(self, saved: SavedFilter) -> None: ...

    async def get(
        self, filter_id: uuid.UUID, *, for_update: bool = False
    ) -> SavedFilter | None: ...

    async def update(self, saved: SavedFilter) -> None: ...

    async def delete(self, filter_id: uuid.UUID) -> None: ...

    async def visible(
        self,
        user_id: uuid.UUID,
        projects: Sequence[uuid.UUID],
        *,
        project_id: uuid.UUID | None,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> list[SavedFilter]:
        """The user's own filters and those shared in `projects`, by name and id; with
        `project_id`, only those of that project."""
        ...


class UnitOfWork(Transaction, Protocol):
    attachments: AttachmentRepository
    configuration: ConfigurationRepository
    tickets: TicketRepository
    milestones: MilestoneRepository
    filters: SavedFilterRepository
    relations: RelationRepository
    comments: CommentRepository
    history: HistoryRepository
    watchers: WatcherRepository
    idempotency: IdempotencyStore
    outbox: EventSink
