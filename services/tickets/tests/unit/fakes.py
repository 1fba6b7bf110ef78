"""In-memory fakes of the tickets service's ports (tests only, not in the runtime package).

`FakeTicketsDatabase` is the committed state. A `FakeUnitOfWork` works on a private copy
of it, taken when its block is entered: its changes are visible to nobody else until
`commit` publishes the copy, and leaving the block without `commit` (an error, a return
before it) discards them (`bugtracker_testkit.in_memory`, the core every service's fakes
share). Repositories hand out copies of what they store, so a use case that changes a
loaded ticket changes nothing until it writes it back with `update`, as with the real
database. `FakeProjectDirectory` plays the projects service (roles and
permissions from `bugtracker_shared.permissions`), `FakeTicketReads` the driver reads.

`TicketsWorld` wires the real use cases (`TicketUseCases`, `CommentUseCases`,
`BulkUseCases`, `ConfigurationUseCases`, `AttachmentUseCases` with the `FakeBlobStore`
of `fake_attachments.py`) to these fakes; `tests/unit/conftest.py`
exposes it as the `world` fixture.

The module is in mypy's `files`, and every fake is assigned to the Protocol it plays
below (`_conforms`), so `mypy` reports a fake that drifts from its port.
"""

from __future__ import annotations

import copy
import itertools
import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bugtracker_shared.events import CloudEvent
from bugtracker_shared.permissions import ProjectRole, permissions_for
from bugtracker_shared.ports import EventSink
from bugtracker_shared.tokens import Principal
from bugtracker_testkit.in_memory import (
    InMemoryOutbox,
    InMemoryOutboxDatabase,
    InMemoryUnitOfWork,
)
from bugtracker_tickets.application.attachments import AttachmentUseCases
from bugtracker_tickets.application.bulk import BulkUseCases
from bugtracker_tickets.application.comments_and_watchers import CommentUseCases
from bugtracker_tickets.application.configuration import ConfigurationUseCases
from bugtracker_tickets.application.ports import (
    Among,
    AttachmentRepository,
    BlobStore,
    CommentRepository,
    Compare,
    Condition,
    ConfigurationRepository,
    Flag,
    HistoryRepository,
    IdempotencyClaim,
    IdempotencyStore,
    MemberInfo,
    MilestoneRepository,
    Page,
    ProjectDirectory,
    RelationRepository,
    SavedFilterRepository,
    TicketQuery,
    TicketReads,
    TicketRepository,
    UnitOfWork,
    WatcherRepository,
    WithLabels,
)
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.domain.attachments import Attachment
from bugtracker_tickets.domain.configuration import FieldDef, TicketTypes, Workflow
from bugtracker_tickets.domain.planning import Milestone, Relation, RelationType, TicketRef
from bugtracker_tickets.domain.saved_filters import SavedFilter
from bugtracker_tickets.domain.tickets import (
    Comment,
    HistoryEntry,
    ProjectAccess,
    Ticket,
    ticket_key,
)
from bugtracker_tickets.infrastructure.content_types import sniff

from services.tickets.tests.unit.fake_attachments import FakeAttachmentRepository, FakeBlobStore
from services.tickets.tests.unit.fake_configuration import (
    FakeConfigurationRepository,
    IndexRow,
    live_ticket,
    matches_field_filter,
)
from services.tickets.tests.unit.fake_milestones import FakeMilestoneRepository
from services.tickets.tests.unit.fake_relations import FakeRelationRepository
from services.tickets.tests.unit.fake_saved_filters import FakeSavedFilterRepository

IDEMPOTENCY_TTL = timedelta(hours=24)  # as SqlIdempotencyStore


@dataclass
class StoredClaim:
    claim: IdempotencyClaim
    created_at: datetime


@dataclass
class TicketsState:
    """Everything the tickets schema holds, as plain Python values."""

    tickets: dict[uuid.UUID, Ticket] = field(default_factory=dict)
    relations: dict[uuid.UUID, Relation] = field(default_factory=dict)
    milestones: dict[uuid.UUID, Milestone] = field(default_factory=dict)
    counters: dict[uuid.UUID, int] = field(default_factory=dict)
    comments: dict[uuid.UUID, Comment] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    watchers: dict[uuid.UUID, dict[uuid.UUID, datetime]] = field(default_factory=dict)
    idempotency: dict[tuple[uuid.UUID, str, str], StoredClaim] = field(default_factory=dict)
    outbox: list[CloudEvent] = field(default_factory=list)
    # Tracker configuration (docs/adr/0040): a project without an entry has the defaults.
    workflows: dict[uuid.UUID, Workflow] = field(default_factory=dict)
    ticket_types: dict[uuid.UUID, TicketTypes] = field(default_factory=dict)
    # Custom fields by id, deleted ones too until purged, and each one's position.
    fields: dict[uuid.UUID, FieldDef] = field(default_factory=dict)
    field_positions: dict[uuid.UUID, int] = field(default_factory=dict)
    # The filter index of ticket values: the rows of (ticket id, field id).
    field_values: dict[tuple[uuid.UUID, uuid.UUID], tuple[IndexRow, ...]] = field(
        default_factory=dict
    )
    # Attachment rows (docs/adr/0041); their bytes are in a FakeBlobStore.
    attachments: dict[uuid.UUID, Attachment] = field(default_factory=dict)
    # When the service learned a project was deleted (the membership view's deleted_at).
    deleted_projects: dict[uuid.UUID, datetime] = field(default_factory=dict)
    saved_filters: dict[uuid.UUID, SavedFilter] = field(default_factory=dict)


class FakeTicketsDatabase(InMemoryOutboxDatabase[TicketsState]):
    """The committed state, and how many transactions committed or rolled back."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(TicketsState())
        self.clock = clock or (lambda: datetime.now(UTC))
        # Like a PostgreSQL sequence: ids are never handed out twice, rollback or not.
        self._history_ids = itertools.count(1)

    def next_history_id(self) -> int:
        return next(self._history_ids)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    # What the tests read: committed state only (and `events`, `event_names`).

    def ticket(self, ticket_id: uuid.UUID) -> Ticket:
        return copy.deepcopy(self.state.tickets[ticket_id])

    def history_of(self, ticket_id: uuid.UUID) -> list[HistoryEntry]:
        return [e for e in self.state.history if e.ticket_id == ticket_id]

    def watchers_of(self, ticket_id: uuid.UUID) -> set[uuid.UUID]:
        return set(self.state.watchers.get(ticket_id, {}))


class FakeTicketRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> TicketsState:
        return self._uow.state

    async def expired(self, cutoff: datetime, *, limit: int) -> list[uuid.UUID]:
        gone = {p for p, at in self._state.deleted_projects.items() if at < cutoff}
        found = [
            t.id
            for t in self._state.tickets.values()
            if (t.deleted_at is not None and t.deleted_at < cutoff) or t.project_id in gone
        ]
        return sorted(found)[:limit]

    async def purge(self, ticket_ids: Sequence[uuid.UUID], now: datetime) -> None:
        state, ids = self._state, set(ticket_ids)
        for ticket in state.tickets.values():
            if ticket.parent_id in ids:
                ticket.parent_id = None
        for ticket_id in ids:
            state.tickets.pop(ticket_id, None)
            state.watchers.pop(ticket_id, None)
        state.relations = {
            k: r for k, r in state.relations.items() if not {r.source_id, r.target_id} & ids
        }
        state.comments = {k: c for k, c in state.comments.items() if c.ticket_id not in ids}
        state.history = [h for h in state.history if h.ticket_id not in ids]
        state.attachments = {k: a for k, a in state.attachments.items() if a.ticket_id not in ids}
        state.field_values = {k: v for k, v in state.field_values.items() if k[0] not in ids}
        del now  # the fakes keep no counters to count the live ones out of

    async def create(
        self,
        draft: Ticket,
        project_key: str,
        watchers: list[uuid.UUID],
        events: list[CloudEvent],
    ) -> int:
        state = self._state
        if draft.id in state.tickets:
            raise ValueError(f"duplicate ticket id {draft.id}")
        number = state.counters.get(draft.project_id, 0) + 1
        state.counters[draft.project_id] = number
        key = ticket_key(project_key, number)
        stored = copy.deepcopy(draft)
        stored.number, stored.key = number, key
        state.tickets[stored.id] = stored
        state.watchers.setdefault(stored.id, {}).update(dict.fromkeys(watchers, draft.created_at))
        # The statement sets the events' data.key from the number, as the SQL one does.
        state.outbox.extend(
            event.model_copy(update={"data": event.data | {"key": key}}) for event in events
        )
        return number

    def _live(self, tickets: Sequence[Ticket]) -> list[Ticket]:
        """Copies as the SQL reads give them (values of deleted fields hidden)."""
        return [live_ticket(self._state, t) for t in tickets]

    async def get(self, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None:
        ticket = self._state.tickets.get(ticket_id)
        return live_ticket(self._state, ticket) if ticket else None

    async def get_by_key(self, key: str) -> Ticket | None:
        for ticket in self._state.tickets.values():
            if ticket.key == key:
                return live_ticket(self._state, ticket)
        return None

    async def update(self, ticket: Ticket) -> None:
        stored = self._state.tickets.get(ticket.id)
        if stored is None:
            return  # an UPDATE that matches no row
        updated = copy.deepcopy(ticket)
        # Columns an UPDATE never writes (SqlTicketRepository.update).
        for fixed in ("id", "project_id", "number", "key", "reporter_id", "created_at"):
            setattr(updated, fixed, getattr(stored, fixed))
        self._state.tickets[ticket.id] = updated

    async def assigned_in_project(
        self, project_id: uuid.UUID, user_id: uuid.UUID, *, limit: int
    ) -> list[Ticket]:
        found = sorted(
            (
                t
                for t in self._state.tickets.values()
                if t.project_id == project_id and t.assignee_id == user_id and t.deleted_at is None
            ),
            key=lambda t: t.id,
        )
        return self._live(found[:limit])

    async def get_many(self, refs: Sequence[uuid.UUID | str]) -> list[Ticket]:
        wanted = set(refs)
        found = [t for t in self._state.tickets.values() if t.id in wanted or t.key in wanted]
        return self._live(sorted(found, key=lambda t: t.id))

    async def update_many(self, tickets: Sequence[Ticket]) -> None:
        for ticket in tickets:
            await self.update(ticket)

    async def lock_hierarchy(self, project_id: uuid.UUID) -> None:
        return None  # one transaction at a time here

    async def ancestors(self, ticket_id: uuid.UUID, *, limit: int) -> list[uuid.UUID]:
        found: list[uuid.UUID] = []
        ticket = self._state.tickets.get(ticket_id)
        while ticket is not None and ticket.parent_id is not None and len(found) < limit:
            found.append(ticket.parent_id)
            ticket = self._state.tickets.get(ticket.parent_id)
        return found

    async def subtree_height(self, ticket_id: uuid.UUID, *, limit: int) -> int:
        level, height = [ticket_id], 0
        while level and height <= limit:
            height += 1
            level = [
                t.id
                for t in self._state.tickets.values()
                if t.parent_id in level and t.deleted_at is None
            ]
        return height

    async def unfinished_children(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        found = sorted(
            (
                t
                for t in self._state.tickets.values()
                if t.parent_id == ticket_id and t.deleted_at is None and not t.is_done
            ),
            key=lambda t: t.number,
        )
        return [TicketRef.of(t) for t in found[:limit]]

    async def in_milestone(self, milestone_id: uuid.UUID, *, limit: int) -> list[Ticket]:
        found = sorted(
            (t for t in self._state.tickets.values() if t.milestone_id == milestone_id),
            key=lambda t: t.id,
        )
        return self._live(found[:limit])


class FakeCommentRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, comment: Comment) -> None:
        if comment.id in self._uow.state.comments:
            raise ValueError(f"duplicate comment id {comment.id}")
        self._uow.state.comments[comment.id] = copy.deepcopy(comment)

    async def get(self, comment_id: uuid.UUID, *, for_update: bool = False) -> Comment | None:
        comment = self._uow.state.comments.get(comment_id)
        return copy.deepcopy(comment) if comment else None

    async def update(self, comment: Comment) -> None:
        stored = self._uow.state.comments.get(comment.id)
        if stored is None:
            return
        for name in ("body", "body_html", "mentions", "updated_at", "deleted_at", "version"):
            setattr(stored, name, copy.deepcopy(getattr(comment, name)))

    async def list(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Comment]:
        rows = sorted(
            (
                c
                for c in self._uow.state.comments.values()
                if c.ticket_id == ticket_id and c.deleted_at is None
            ),
            key=lambda c: (c.created_at, c.id),
        )
        if after is not None:
            rows = [c for c in rows if (c.created_at, c.id) > after]
        return copy.deepcopy(rows[:limit])


class FakeHistoryRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, entries: list[HistoryEntry]) -> None:
        for entry in entries:
            stored = HistoryEntry(
                ticket_id=entry.ticket_id,
                at=entry.at,
                actor_id=entry.actor_id,
                field=entry.field,
                from_value=copy.deepcopy(entry.from_value),
                to_value=copy.deepcopy(entry.to_value),
                id=self._uow.database.next_history_id(),
            )
            self._uow.state.history.append(stored)

    async def list(
        self, ticket_id: uuid.UUID, *, after: int | None, limit: int
    ) -> list[HistoryEntry]:
        rows = [
            e
            for e in self._uow.state.history
            if e.ticket_id == ticket_id and (after is None or (e.id or 0) > after)
        ]
        return sorted(rows, key=lambda e: e.id or 0)[:limit]


class FakeWatcherRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, ticket_id: uuid.UUID, user_id: uuid.UUID, since: datetime) -> bool:
        watching = self._uow.state.watchers.setdefault(ticket_id, {})
        if user_id in watching:
            return False
        watching[user_id] = since
        return True

    async def add_many(
        self, watches: Sequence[tuple[uuid.UUID, uuid.UUID]], since: datetime
    ) -> None:
        for ticket_id, user_id in watches:
            await self.add(ticket_id, user_id, since)

    async def list_many(self, ticket_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        return {ticket_id: await self.list(ticket_id) for ticket_id in ticket_ids}

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return self._uow.state.watchers.get(ticket_id, {}).pop(user_id, None) is not None

    async def list(self, ticket_id: uuid.UUID) -> list[uuid.UUID]:
        watching = self._uow.state.watchers.get(ticket_id, {})
        return [user_id for user_id, _ in sorted(watching.items(), key=lambda w: (w[1], w[0]))]

    async def remove_in_project(self, project_id: uuid.UUID, user_id: uuid.UUID) -> int:
        removed = 0
        for ticket in self._uow.state.tickets.values():
            if ticket.project_id == project_id:
                watching = self._uow.state.watchers.get(ticket.id, {})
                removed += watching.pop(user_id, None) is not None
        return removed


class FakeIdempotencyStore:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        claims = self._uow.state.idempotency
        now = self._uow.database.clock()
        ident = (claim.user_id, claim.scope, claim.key)
        earlier = claims.get(ident)
        if earlier is not None and earlier.created_at < now - IDEMPOTENCY_TTL:
            del claims[ident]
            earlier = None
        if earlier is None:
            claims[ident] = StoredClaim(claim, now)
            return None
        return earlier.claim


class FakeOutbox(InMemoryOutbox[TicketsState]):
    """The event sink: events land in the transaction's outbox, published on commit."""


class FakeUnitOfWork(InMemoryUnitOfWork[TicketsState]):
    """One transaction on a `FakeTicketsDatabase` (`tests.support.in_memory`)."""

    database: FakeTicketsDatabase
    # Typed with the ports, as TicketsUnitOfWork is (Protocol attributes are invariant).
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

    def __init__(self, database: FakeTicketsDatabase) -> None:
        super().__init__(database)
        self.database = database
        self.attachments = FakeAttachmentRepository(self)
        self.configuration = FakeConfigurationRepository(self)
        self.tickets = FakeTicketRepository(self)
        self.milestones = FakeMilestoneRepository(self)
        self.filters = FakeSavedFilterRepository(self)
        self.relations = FakeRelationRepository(self)
        self.comments = FakeCommentRepository(self)
        self.history = FakeHistoryRepository(self)
        self.watchers = FakeWatcherRepository(self)
        self.idempotency = FakeIdempotencyStore(self)
        self.outbox = FakeOutbox(self)


@dataclass
class FakeProject:
    id: uuid.UUID
    key: str
    members: dict[uuid.UUID, ProjectRole] = field(default_factory=dict)
    names: dict[uuid.UUID, str] = field(default_factory=dict)
    archived: bool = False
    deleted: bool = False


class FakeProjectDirectory:
    """The projects service as tickets sees it: roles give the shared permission table,
    an admin may do everything, outsiders and deleted projects get None."""

    def __init__(self) -> None:
        self.projects: dict[uuid.UUID, FakeProject] = {}
        self.calls: list[str] = []

    def add(self, key: str, members: dict[uuid.UUID, ProjectRole]) -> FakeProject:
        project = FakeProject(uuid.uuid4(), key, dict(members))
        self.projects[project.id] = project
        return project

    def _find(self, ref: str) -> FakeProject | None:
        for project in self.projects.values():
            if not project.deleted and ref in (str(project.id), project.key):
                return project
        return None

    async def access(self, project_ref: str, caller: Principal) -> ProjectAccess | None:
        self.calls.append("access")
        project = self._find(project_ref)
        if project is None:
            return None
        role = project.members.get(caller.user_id)
        if role is None and not caller.is_admin:
            return None
        return ProjectAccess(
            project_id=project.id,
            project_key=project.key,
            archived=project.archived,
            role=role,
            permissions=permissions_for(role, is_admin=caller.is_admin),
        )

    async def is_member(self, project_id: uuid.UUID, user_id: uuid.UUID, caller: Principal) -> bool:
        self.calls.append("is_member")
        project = self._find(str(project_id))
        return project is not None and user_id in project.members

    async def members(self, project_id: uuid.UUID, caller: Principal) -> list[MemberInfo]:
        self.calls.append("members")
        project = self._find(str(project_id))
        if project is None:
            return []
        return [
            MemberInfo(
                user_id=user_id,
                display_name=project.names.get(user_id, f"user-{str(user_id)[:8]}"),
                email=f"{str(user_id)[:8]}@example.com",
            )
            for user_id in project.members
        ]

    async def visible_projects(self, caller: Principal) -> list[uuid.UUID]:
        self.calls.append("visible_projects")
        return [
            p.id
            for p in self.projects.values()
            if not p.deleted and (caller.is_admin or caller.user_id in p.members)
        ]


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def matches_condition(
    ticket: Ticket, condition: Condition, blocked: set[uuid.UUID], with_files: set[uuid.UUID]
) -> bool:
    """A typed query's condition as TicketSearch applies it in SQL (NULLs included)."""
    match condition:
        case Among(column, values, negated):
            value = getattr(ticket, column)
            return (value in values) != negated
        case Compare(column, op, value):
            actual = ticket.priority.rank if column == "priority_rank" else getattr(ticket, column)
            return actual is not None and _COMPARE[op](actual, value)
        case WithLabels(labels, negated):
            return bool(set(labels) & set(ticket.labels)) != negated
        case Flag(name, negated):
            return (ticket.id in (blocked if name == "blocked" else with_files)) != negated
    raise AssertionError(condition)


def _sort_value(ticket: Ticket, name: str) -> Any:
    if name == "priority":
        return ticket.priority.rank
    if name == "due_date":
        return ticket.due_date or date.max
    return getattr(ticket, name)


class FakeTicketReads:
    """The reads outside a unit of work, on the committed state. `get` never knows the
    caller's access (None: the use cases ask the ProjectDirectory); `search` filters in
    Python, with `rank` sorted as `-updated_at`."""

    def __init__(self, database: FakeTicketsDatabase) -> None:
        self.database = database

    async def get(
        self, ref: uuid.UUID | str, caller: Principal
    ) -> tuple[Ticket, ProjectAccess | None] | None:
        for ticket in self.database.state.tickets.values():
            if ref in (ticket.id, ticket.key):
                return live_ticket(self.database.state, ticket), None
        return None

    async def search(
        self, query: TicketQuery, *, after: list[Any] | None, limit: int, with_total: bool
    ) -> Page:
        def matches(t: Ticket) -> bool:
            text = (query.text or "").lower()
            return (
                t.project_id in query.project_ids
                and t.deleted_at is None
                and (not query.statuses or t.status in query.statuses)
                and (not query.priorities or t.priority in query.priorities)
                and (not query.types or t.type in query.types)
                and (not query.unassigned or t.assignee_id is None)
                and (query.assignee_id is None or t.assignee_id == query.assignee_id)
                and (query.reporter_id is None or t.reporter_id == query.reporter_id)
                and set(query.labels) <= set(t.labels)
                and (not text or text in f"{t.title} {t.description}".lower())
                and (query.due_before is None or (t.due_date or date.max) < query.due_before)
                and (query.updated_since is None or t.updated_at >= query.updated_since)
                and planned(t)
                and all(matches_field_filter(state, t, f) for f in query.fields)
                and all(matches_condition(t, c, blocked, with_files) for c in query.conditions)
            )

        def planned(t: Ticket) -> bool:
            return (
                (not query.no_milestone or t.milestone_id is None)
                and (query.milestone_id is None or t.milestone_id == query.milestone_id)
                and (not query.no_parent or t.parent_id is None)
                and (query.parent_id is None or t.parent_id == query.parent_id)
                and (not query.blocked or t.id in blocked)
            )

        state = self.database.state
        blocked = {
            r.target_id
            for r in state.relations.values()
            if r.type is RelationType.BLOCKS
            and state.tickets[r.source_id].deleted_at is None
            and not state.tickets[r.source_id].is_done
        }

        with_files = {a.ticket_id for a in state.attachments.values()}
        sort = "-updated_at" if query.sort == "rank" else query.sort
        name, descending = sort.lstrip("-"), sort.startswith("-")
        found = sorted(
            filter(matches, self.database.state.tickets.values()),
            key=lambda t: (_sort_value(t, name), t.id),
            reverse=descending,
        )
        if after is not None:
            position = next(
                (i for i, t in enumerate(found) if str(t.id) == str(after[1])), len(found)
            )
            found = found[position + 1 :]
        page = [live_ticket(state, t) for t in found[:limit]]
        next_after = None
        if len(found) > limit:
            last = page[-1]
            next_after = [str(_sort_value(last, name)), str(last.id)]
        total = len(list(filter(matches, self.database.state.tickets.values())))
        return Page(page, next_after, total if with_total else None)

    async def count(self, query: TicketQuery) -> int:
        page = await self.search(query, after=None, limit=1, with_total=True)
        return page.total or 0


@dataclass(frozen=True)
class Team:
    """One project with a member of every role, and an outsider."""

    project: FakeProject
    owner: Principal
    maintainer: Principal
    developer: Principal
    reporter: Principal
    viewer: Principal
    outsider: Principal


@dataclass
class TicketsWorld:
    """The real use cases on the fakes, and helpers to set up a scene."""

    database: FakeTicketsDatabase = field(default_factory=FakeTicketsDatabase)
    projects: FakeProjectDirectory = field(default_factory=FakeProjectDirectory)
    tickets: TicketUseCases = field(init=False)
    comments: CommentUseCases = field(init=False)
    bulk: BulkUseCases = field(init=False)
    configuration: ConfigurationUseCases = field(init=False)
    # Attachments (docs/adr/0041): at most `attachment_max_bytes` each, the project's
    # together at most `attachment_quota` (None: unlimited), bytes in `blobs`.
    blobs: FakeBlobStore = field(default_factory=FakeBlobStore)
    attachment_max_bytes: int = 1000
    attachment_quota: int | None = None
    attachments: AttachmentUseCases = field(init=False)

    def __post_init__(self) -> None:
        self.tickets = TicketUseCases(
            uow=self.database.unit_of_work,
            projects=self.projects,
            reads=FakeTicketReads(self.database),
        )
        self.comments = CommentUseCases(uow=self.database.unit_of_work, tickets=self.tickets)
        self.bulk = BulkUseCases(uow=self.database.unit_of_work, tickets=self.tickets)
        self.configuration = ConfigurationUseCases(
            uow=self.database.unit_of_work, tickets=self.tickets
        )
        self.attachments = AttachmentUseCases(
            uow=self.database.unit_of_work,
            tickets=self.tickets,
            store=self.blobs,
            sniff=sniff,
            max_bytes=self.attachment_max_bytes,
            quota_bytes=self.attachment_quota,
        )

    @staticmethod
    def user(*, admin: bool = False) -> Principal:
        return Principal(
            user_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            role="admin" if admin else "member",
            token="token",
        )

    def project(self, key: str = "BUG", **members: tuple[Principal, ProjectRole]) -> FakeProject:
        """A project whose members are given by name (`dev=(principal, DEVELOPER)`)."""
        project = self.projects.add(key, {p.user_id: role for p, role in members.values()})
        project.names = {p.user_id: name for name, (p, _) in members.items()}
        return project

    def team(self, key: str = "BUG") -> Team:
        """A project with one member of each role (named after it) and an outsider."""
        people = {role: self.user() for role in ProjectRole}
        project = self.project(
            key, **{role.value: (principal, role) for role, principal in people.items()}
        )
        return Team(
            project=project,
            owner=people[ProjectRole.OWNER],
            maintainer=people[ProjectRole.MAINTAINER],
            developer=people[ProjectRole.DEVELOPER],
            reporter=people[ProjectRole.REPORTER],
            viewer=people[ProjectRole.VIEWER],
            outsider=self.user(),
        )


def _conforms(database: FakeTicketsDatabase) -> None:
    """Never called: mypy checks that each fake satisfies the Protocol it plays."""
    uow: UnitOfWork = FakeUnitOfWork(database)
    make_uow: Callable[[], UnitOfWork] = database.unit_of_work
    tickets: TicketRepository = uow.tickets
    fake = FakeUnitOfWork(database)
    repositories: tuple[
        AttachmentRepository,
        ConfigurationRepository,
        TicketRepository,
        CommentRepository,
        HistoryRepository,
        WatcherRepository,
        IdempotencyStore,
        EventSink,
    ] = (
        FakeAttachmentRepository(fake),
        FakeConfigurationRepository(fake),
        fake.tickets,
        fake.comments,
        fake.history,
        fake.watchers,
        fake.idempotency,
        fake.outbox,
    )
    directory: ProjectDirectory = FakeProjectDirectory()
    reads: TicketReads = FakeTicketReads(database)
    store: BlobStore = FakeBlobStore()
    del uow, make_uow, tickets, repositories, directory, reads, store
