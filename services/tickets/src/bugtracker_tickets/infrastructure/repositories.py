from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bugtracker_shared.db import session_driver
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.outbox import outbox_row
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.rows import Columns
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.util import ClauseAdapter

from bugtracker_tickets.application.ports import (
    Among,
    Compare,
    Condition,
    FieldFilter,
    Flag,
    IdempotencyClaim,
    Page,
    TicketQuery,
    WithLabels,
)
from bugtracker_tickets.domain.configuration import Category
from bugtracker_tickets.domain.planning import TicketRef
from bugtracker_tickets.domain.tickets import (
    Comment,
    HistoryEntry,
    Priority,
    Ticket,
)
from bugtracker_tickets.infrastructure.tables import (
    attachments,
    comments,
    custom_fields,
    field_values,
    history,
    idempotency_keys,
    tickets,
    watchers,
)

IDEMPOTENCY_TTL = timedelta(hours=24)


def _field_values(value: Any) -> dict[str, Any]:
    """`fields` as a row gives it: decoded by SQLAlchemy, JSON text from the driver."""
    return json.loads(value) if isinstance(value, str) else dict(value)


TICKETS = Columns(
    Ticket,
    tickets,
    load={
        "priority": Priority,
        "status_category": Category,
        "labels": list,
        "fields": _field_values,
    },
    # The generated search/sort columns and the trigger-kept `open_blockers` are the
    # database's: read by no field, written by no INSERT or UPDATE from a ticket.
    unmapped=("search", "priority_rank", "due_sort", "open_blockers"),
)
# What an update may change: not the identity, the number or the creation.
_TICKET_CHANGES = TICKETS.without("id", "project_id", "number", "key", "reporter_id", "created_at")
# Custom field values as reads return them: without the keys of deleted fields, which
# are hidden at once and purged from the rows later (docs/adr/0040). A ticket without
# values costs nothing more.
_DELETED_KEYS = (
    select(func.array_agg(custom_fields.c.key))
    .where(
        custom_fields.c.project_id == tickets.c.project_id,
        custom_fields.c.deleted_at.is_not(None),
    )
    .scalar_subquery()
)
LIVE_FIELDS = case(
    (tickets.c.fields == literal_column("'{}'::jsonb"), tickets.c.fields),
    else_=tickets.c.fields.op("-")(func.coalesce(_DELETED_KEYS, literal_column("'{}'::text[]"))),
).label("fields")
# What a ticket row is made of, in the table's order (custom fields as reads see them).
TICKET_COLUMNS: list[ColumnElement[Any]] = [
    LIVE_FIELDS if column.name == "fields" else column for column in TICKETS.columns
]
ticket_from_row = TICKETS.from_row


# The statements of a ticket's creation, run on the unit of work's driver connection
# (bugtracker_shared.db.session_driver): creating is the hottest write.
_NEXT_NUMBER = """
INSERT INTO tickets.project_counters (project_id, last_number) VALUES ($1, 1)
ON CONFLICT (project_id) DO UPDATE SET last_number = project_counters.last_number + 1
RETURNING last_number
"""
_ADD_WATCHER = """
INSERT INTO tickets.watchers (ticket_id, user_id, since) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING user_id
"""


# A ticket row's own columns (the generated ones excluded), as `TICKETS.values` gives them.
_TICKET_FIELDS = [column.name for column in TICKETS.columns]


def _sort_key(query: TicketQuery) -> tuple[ColumnElement[Any], bool]:
    """The sort expression (served by an index, see tables.py) and whether it descends."""
    if query.sort == "rank":
        rank = func.ts_rank(tickets.c.search, _tsquery(query))
        return rank, True
    name = query.sort.lstrip("-")
    column = {
        "created_at": tickets.c.created_at,
        "updated_at": tickets.c.updated_at,
        "priority": tickets.c.priority_rank,
        "due_date": tickets.c.due_sort,
    }[name]
    return column, query.sort.startswith("-")


def _encode(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def _decode(sort: str, value: object) -> object:
    """A cursor's sort value back in the type of its column."""
    try:
        name = sort.lstrip("-")
        if name in ("created_at", "updated_at"):
            return datetime.fromisoformat(str(value))
        if name == "due_date":
            return date.fromisoformat(str(value))
        if name in ("priority", "rank") and isinstance(value, int | float):
            return value
    except ValueError:
        pass
    raise InvalidCursorError("The cursor is not valid.")


# Newest tickets (in the list's order) a text search checks before it asks the GIN index.
TEXT_SCAN_WINDOW = 2000


def _tsquery(query: TicketQuery) -> ColumnElement[Any]:
    return func.websearch_to_tsquery("simple", query.text)


def _text_match(query: TicketQuery) -> ColumnElement[bool]:
    return tickets.c.search.op("@@")(_tsquery(query))


def _ordered(
    statement: Select[Any], key: ColumnElement[Any], tiebreak: ColumnElement[Any], descending: bool
) -> Select[Any]:
    if descending:
        return statement.order_by(key.desc(), tiebreak.desc())
    return statement.order_by(key.asc(), tiebreak.asc())


def _after(
    query: TicketQuery, key: ColumnElement[Any], descending: bool, after: list[Any]
) -> ColumnElement[bool]:
    """The keyset condition: rows after the cursor's (sort value, id) in the list's order."""
    value, last_id = _decode(query.sort, after[0]), after[1]
    try:
        boundary = tuple_(literal(value), literal(uuid.UUID(str(last_id))))
    except ValueError as exc:
        raise InvalidCursorError("The cursor is not valid.") from exc
    pair = tuple_(key, tickets.c.id)
    return pair < boundary if descending else pair > boundary


def _filters(query: TicketQuery) -> list[ColumnElement[bool]]:
    return [*_plain_filters(query), *_narrowing(query)]


def _narrowing(query: TicketQuery) -> list[ColumnElement[bool]]:
    """The full text and the typed query's conditions: `TicketSearch._narrowed` applies
    them in two steps, after the plain filters."""
    text = [_text_match(query)] if query.text else []
    return [*text, *(_condition(c, query.project_ids) for c in query.conditions)]


def _plain_filters(query: TicketQuery) -> list[ColumnElement[bool]]:
    t = tickets.c
    where: list[ColumnElement[bool]] = [t.project_id.in_(query.project_ids), t.deleted_at.is_(None)]
    if query.statuses:
        where.append(t.status.in_(query.statuses))
    if query.priorities:
        where.append(t.priority.in_([p.value for p in query.priorities]))
    if query.types:
        where.append(t.type.in_(query.types))
    if query.unassigned:
        where.append(t.assignee_id.is_(None))
    elif query.assignee_id is not None:
        where.append(t.assignee_id == query.assignee_id)
    if query.reporter_id is not None:
        where.append(t.reporter_id == query.reporter_id)
    if query.labels:
        where.append(t.labels.contains(list(query.labels)))
    if query.due_before is not None:
        where.append(t.due_date < query.due_before)
    if query.updated_since is not None:
        where.append(t.updated_at >= query.updated_since)
    return [*where, *_planning_filters(query), *(_field_filter(f) for f in query.fields)]


_COMPARE: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


# Compared as the sort indexes hold them (tables.py): due dates as `due_sort`.
_COMPARED: dict[str, ColumnElement[Any]] = {
    "created_at": tickets.c.created_at,
    "updated_at": tickets.c.updated_at,
    "due_date": tickets.c.due_sort,
    "priority_rank": tickets.c.priority_rank,
}


def _fixed(column: ColumnElement[Any], value: Any) -> ColumnElement[Any]:
    """A value written into the statement, not sent as a parameter: a prepared statement
    run a few times with parameters gets a generic plan, which cannot know that one label
    is on no ticket and another on half of them, and walks a million rows for the rare one
    (bench/query_bench.py; the same as for `field.<key>`, bench/explain_fields.py)."""
    return literal(value, column.type, literal_execute=True)


def _condition(condition: Condition, project_ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    """One condition of a typed query (docs/adr/0045) as SQL."""
    t = tickets.c
    match condition:
        case Among(column, values, negated):
            return _among(t[column], values, negated)
        case Compare(column, op, value):
            target = _COMPARED[column]
            compared: ColumnElement[bool] = _COMPARE[op](target, _fixed(target, value))
            if column == "due_date":  # due_sort is `infinity` for no due date
                return and_(compared, t.due_date.is_not(None))
            return compared
        case WithLabels(labels, negated):
            # Cast: a literal array is text[], the column varchar[] (no `&&` between them).
            wanted = cast(_fixed(t.labels, list(labels)), t.labels.type)
            overlap: ColumnElement[bool] = t.labels.overlap(wanted)
            return not_(overlap) if negated else overlap
        case Flag("blocked", negated):
            # A literal 0 as in _planning_filters: the partial index ix_tickets_blocked.
            zero: ColumnElement[int] = literal_column("0")
            return t.open_blockers == zero if negated else t.open_blockers > zero
        case Flag("attachment", negated):
            # The few tickets with files of the projects listed (ix_attachments_project),
            # one uncorrelated set the planner hashes or starts from.
            with_files = t.id.in_(
                select(attachments.c.ticket_id).where(
                    attachments.c.project_id.in_(list(project_ids))
                )
            )
            return not_(with_files) if negated else with_files
    raise AssertionError(f"unknown condition {condition!r}")


def _among(
    column: ColumnElement[Any], values: tuple[Any, ...], negated: bool
) -> ColumnElement[bool]:
    known = [_fixed(column, v) for v in values if v is not None]
    unset = len(known) < len(values)
    parts: list[ColumnElement[bool]] = []
    if known:
        parts.append(column.in_(known))
    if unset:
        parts.append(column.is_(None))
    matches = or_(*parts) if len(parts) > 1 else parts[0]
    if not negated:
        return matches
    # NOT IN is unknown for a NULL: a ticket without a value is not one of the values.
    return not_(func.coalesce(matches, False))


def _field_filter(wanted: FieldFilter) -> ColumnElement[bool]:
    """`field.<key>=` (any of the values) and `.gte`/`.lte`: the tickets the field's
    value index names (docs/adr/0040)."""
    # The field and its values are written into the statement, not sent as parameters:
    # a prepared statement run a few times with parameters gets a generic plan, which
    # cannot know that `critical` is rare and `normal` is common, and fetches every
    # match of a common value before the page (measured in bench/explain_fields.py).
    column = field_values.c[wanted.column]

    def fixed(value: Any) -> Any:
        return _fixed(column, value)

    ids = [_fixed(field_values.c.field_id, i) for i in wanted.field_ids]
    conditions: list[ColumnElement[bool]] = [field_values.c.field_id.in_(ids)]
    if wanted.equals:
        conditions.append(column.in_([fixed(value) for value in wanted.equals]))
    if wanted.gte is not None:
        conditions.append(column >= fixed(wanted.gte))
    if wanted.lte is not None:
        conditions.append(column <= fixed(wanted.lte))
    with_value = tickets.c.id.in_(select(field_values.c.ticket_id).where(*conditions))
    return not_(with_value) if wanted.negated else with_value


def _planning_filters(query: TicketQuery) -> list[ColumnElement[bool]]:
    """`milestone=`, `parent=` and `is=blocked` (docs/adr/0039)."""
    t = tickets.c
    where: list[ColumnElement[bool]] = []
    if query.no_milestone:
        where.append(t.milestone_id.is_(None))
    elif query.milestone_id is not None:
        where.append(t.milestone_id == query.milestone_id)
    if query.no_parent:
        where.append(t.parent_id.is_(None))
    elif query.parent_id is not None:
        where.append(t.parent_id == query.parent_id)
    if query.blocked:
        # Kept by the triggers of migration 0005; a literal 0, not a parameter, so that
        # every plan (generic ones too) can use the partial index ix_tickets_blocked.
        where.append(t.open_blockers > literal_column("0"))
    return where


def _create_statement() -> str:
    """A ticket's creation as one statement: the project's counter moves on, and the
    ticket (numbered and keyed from it), its watchers and its events are written.

    The counter row stays locked until the commit (numbers are gapless), so it is taken
    in the statement that also writes everything else: concurrent creates in one project
    wait for one statement and the commit, not for every round trip of the create. The
    events' `data.key` is set from the number here too."""
    own = [f for f in _TICKET_FIELDS if f not in ("number", "key")]
    param = {field: f"${n}" for n, field in enumerate(own, start=1)}
    prefix, watchers, since, ids, aggregates, routing_keys, payloads = (
        f"${len(own) + n}" for n in range(1, 8)
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = {c.name: c.type.compile(dialect=dialect) for c in TICKETS.columns}
    values = [
        "n.last_number"
        if field == "number"
        else f"{prefix}::text || '-' || n.last_number"
        if field == "key"
        else f"{param[field]}::{types[field]}"
        for field in _TICKET_FIELDS
    ]
    counter = _NEXT_NUMBER.replace("$1", f"{param['project_id']}::uuid")
    return f"""
WITH n AS ({counter}),
t AS (
    INSERT INTO tickets.tickets ({", ".join(_TICKET_FIELDS)})
    SELECT {", ".join(values)} FROM n
    RETURNING id, number, key
),
w AS (
    INSERT INTO tickets.watchers (ticket_id, user_id, since)
    SELECT t.id, u, {since}::timestamptz FROM t, unnest({watchers}::uuid[]) AS u
),
o AS (
    INSERT INTO tickets.outbox (event_id, aggregate_id, routing_key, payload)
    SELECT e.id, e.aggregate, e.routing_key,
           jsonb_set(e.payload::jsonb, '{{data,key}}', to_jsonb(t.key))
    FROM t, unnest({ids}::uuid[], {aggregates}::text[], {routing_keys}::text[],
                   {payloads}::text[]) AS e(id, aggregate, routing_key, payload)
)
SELECT number FROM t
"""  # noqa: S608 (built from this module's constants only)


_CREATE = _create_statement()


# The first key of the transaction-scoped advisory lock that serializes hierarchy changes
# in one project (the second is the project id's hash).
_HIERARCHY_LOCK = 0x7E1
# A ticket's ancestors, nearest first, bounded (a cycle cannot exist, but the bound keeps
# the walk finite whatever the data).
_ANCESTORS = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT t.id, t.parent_id, 0 FROM tickets.tickets t WHERE t.id = $1
    UNION ALL
    SELECT p.id, p.parent_id, up.depth + 1
    FROM up JOIN tickets.tickets p ON p.id = up.parent_id
    WHERE up.depth < $2
)
SELECT id FROM up WHERE depth > 0 ORDER BY depth
"""
# Levels of a ticket's live subtree (the ticket is level 1), counted up to a bound.
_SUBTREE_HEIGHT = """
WITH RECURSIVE down(id, depth) AS (
    SELECT $1::uuid, 1
    UNION ALL
    SELECT c.id, down.depth + 1
    FROM down JOIN tickets.tickets c ON c.parent_id = down.id AND c.deleted_at IS NULL
    WHERE down.depth < $2
)
SELECT max(depth) FROM down
"""
# A ticket as relations, dependencies and children list it (`TicketRef`).
REF_COLUMNS = (
    tickets.c.id,
    tickets.c.key,
    tickets.c.title,
    tickets.c.status,
    tickets.c.project_id,
)


def unfinished(table: FromClause = tickets) -> ColumnElement[bool]:
    """A live ticket (of `table`, an alias of tickets) not in a done-category status: one
    that still holds back the tickets it blocks and its parent."""
    return and_(
        table.c.deleted_at.is_(None),
        table.c.status_category != Category.DONE.value,
    )


# An UPDATE of one ticket by id with its changeable columns as parameters (`b_<name>`:
# SQLAlchemy reserves the columns' own names for the SET clause).
_UPDATE_BY_ID = (
    update(tickets)
    .where(tickets.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _TICKET_CHANGES.written})
)


def _by_id(values: dict[str, Any], ticket_id: uuid.UUID) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in values.items()} | {"b_id": ticket_id}


# Tickets to purge (docs/adr/0041): deleted before the cutoff, and every ticket of a
# project deleted before it; each part served by an index.
_EXPIRED = """
(SELECT id FROM tickets.tickets WHERE deleted_at < $1 LIMIT $2)
UNION
(SELECT t.id FROM tickets.tickets t
 JOIN tickets.project_view p ON p.id = t.project_id
 WHERE p.deleted AND p.deleted_at < $1 LIMIT $2)
LIMIT $2
"""


class SqlTicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def expired(self, cutoff: datetime, *, limit: int) -> list[uuid.UUID]:
        driver = await session_driver(self._session)
        return [row["id"] for row in await driver.fetch(_EXPIRED, cutoff, limit)]

    async def purge(self, ticket_ids: Sequence[uuid.UUID], now: datetime) -> None:
        ids = list(ticket_ids)
        live = tickets.c.deleted_at.is_(None)
        await self._session.execute(
            update(tickets).where(tickets.c.id.in_(ids), live).values(deleted_at=now)
        )
        await self._session.execute(
            update(tickets).where(tickets.c.parent_id.in_(ids)).values(parent_id=None)
        )
        await self._session.execute(delete(tickets).where(tickets.c.id.in_(ids)))

    async def create(
        self,
        draft: Ticket,
        project_key: str,
        watchers: list[uuid.UUID],
        events: list[CloudEvent],
    ) -> int:
        """Number and write `draft` (its `number` and `key` are ignored), with its first
        watchers and its events, in one statement of the unit of work; the number."""
        values = TICKETS.values(draft)
        values["fields"] = json.dumps(values["fields"])  # the driver's jsonb is text
        own = [values[f] for f in _TICKET_FIELDS if f not in ("number", "key")]
        # The events' outbox columns, as four arrays for the statement's unnest.
        ids, aggregates, routing_keys, payloads = zip(*map(outbox_row, events), strict=True)
        driver = await session_driver(self._session)
        number = await driver.fetchval(
            _CREATE,
            *own,
            project_key,
            watchers,
            draft.created_at,
            list(ids),
            list(aggregates),
            list(routing_keys),
            list(payloads),
        )
        return int(number)

    async def _one(self, query: Select[Any]) -> Ticket | None:
        row = (await self._session.execute(query)).mappings().first()
        return ticket_from_row(row) if row else None

    async def get(self, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket | None:
        query = select(*TICKET_COLUMNS).where(tickets.c.id == ticket_id)
        return await self._one(query.with_for_update() if for_update else query)

    async def get_by_key(self, key: str) -> Ticket | None:
        return await self._one(select(*TICKET_COLUMNS).where(tickets.c.key == key))

    async def assigned_in_project(
        self, project_id: uuid.UUID, user_id: uuid.UUID, *, limit: int
    ) -> list[Ticket]:
        query = (
            select(*TICKET_COLUMNS)
            .where(
                tickets.c.project_id == project_id,
                tickets.c.assignee_id == user_id,
                tickets.c.deleted_at.is_(None),
            )
            .order_by(tickets.c.id)
            .limit(limit)
            .with_for_update()
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [ticket_from_row(row) for row in rows]

    async def update(self, ticket: Ticket) -> None:
        await self._session.execute(
            update(tickets).where(tickets.c.id == ticket.id).values(_TICKET_CHANGES.values(ticket))
        )

    async def get_many(self, refs: Sequence[uuid.UUID | str]) -> list[Ticket]:
        ids = [ref for ref in refs if isinstance(ref, uuid.UUID)]
        keys = [ref for ref in refs if isinstance(ref, str)]
        query = (
            select(*TICKET_COLUMNS)
            .where(or_(tickets.c.id.in_(ids), tickets.c.key.in_(keys)))
            .order_by(tickets.c.id)
            .with_for_update()
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [ticket_from_row(row) for row in rows]

    async def update_many(self, changed: Sequence[Ticket]) -> None:
        if not changed:
            return
        # executemany: asyncpg pipelines the rows' UPDATEs in one round trip.
        await self._session.execute(
            _UPDATE_BY_ID, [_by_id(_TICKET_CHANGES.values(ticket), ticket.id) for ticket in changed]
        )

    async def lock_hierarchy(self, project_id: uuid.UUID) -> None:
        await self._session.execute(
            select(func.pg_advisory_xact_lock(_HIERARCHY_LOCK, func.hashtext(str(project_id))))
        )

    async def ancestors(self, ticket_id: uuid.UUID, *, limit: int) -> list[uuid.UUID]:
        driver = await session_driver(self._session)
        rows = await driver.fetch(_ANCESTORS, ticket_id, limit)
        return [row["id"] for row in rows]

    async def subtree_height(self, ticket_id: uuid.UUID, *, limit: int) -> int:
        driver = await session_driver(self._session)
        return int(await driver.fetchval(_SUBTREE_HEIGHT, ticket_id, limit + 1))

    async def unfinished_children(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        query = (
            select(*REF_COLUMNS)
            .where(
                tickets.c.parent_id == ticket_id,
                unfinished(),
            )
            .order_by(tickets.c.number)
            .limit(limit)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [TicketRef(**row) for row in rows]

    async def in_milestone(self, milestone_id: uuid.UUID, *, limit: int) -> list[Ticket]:
        query = (
            select(*TICKET_COLUMNS)
            .where(tickets.c.milestone_id == milestone_id)
            .order_by(tickets.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [ticket_from_row(row) for row in rows]


class TicketSearch:
    """Ticket lists and search, built with SQLAlchemy Core (many optional filters) and run
    on whatever executes them: the reads run it on an autocommit connection (no BEGIN and
    ROLLBACK round trips around a read)."""

    def __init__(self, executor: AsyncConnection) -> None:
        self._conn = executor

    async def search(
        self, query: TicketQuery, *, after: list[Any] | None, limit: int, with_total: bool
    ) -> Page:
        key, descending = _sort_key(query)
        keyset = [_after(query, key, descending, after)] if after is not None else []
        if (query.text or query.conditions) and query.sort != "rank":
            rows = await self._narrowed(query, keyset, key, descending, limit)
        else:
            statement = _ordered(
                select(*TICKET_COLUMNS, key.label("sort_value")).where(*_filters(query), *keyset),
                key,
                tickets.c.id,
                descending,
            ).limit(limit + 1)
            rows = (await self._conn.execute(statement)).mappings().all()
        found = [ticket_from_row(row) for row in rows[:limit]]
        next_after = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_after = [_encode(last["sort_value"]), str(last["id"])]
        total = await self.count(query) if with_total else None
        return Page(found, next_after, total)

    async def count(self, query: TicketQuery) -> int:
        return int(await self._conn.scalar(select(func.count()).where(*_filters(query))) or 0)

    async def _narrowed(
        self,
        query: TicketQuery,
        keyset: list[ColumnElement[bool]],
        key: ColumnElement[Any],
        descending: bool,
        limit: int,
    ) -> Sequence[RowMapping]:
        """Full text and typed-query conditions in a sort order an index serves, fast
        whether they match many tickets or few.

        First the newest (in sort order) `TEXT_SCAN_WINDOW` tickets of the plain filters
        (and of the query's ranges on the sort column itself: index conditions), walked
        by the sort index and checked for the rest as they come: a common word or
        condition fills the page early and the walk stops there. A page not filled from
        that window means the matches are rare, or far along the order (`created:<` a
        year ago is at the end of `-updated_at`); then every match comes from the index
        that suits its conditions (GIN, a date index; materialized, so the planner cannot
        walk the sort index instead, which it would, guessing the matches spread evenly
        along it), and only the page's rows are read whole. One plan alone is slow for one
        of the two cases at 1M tickets (bench/query_bench.py).
        """
        on_key, narrow = _split_on_sort_key(query, key)
        plain = [*_plain_filters(query), *keyset, *on_key]
        columns = [*TICKET_COLUMNS, *_SEARCHED]
        recent = (
            _ordered(
                select(*columns, key.label("sort_value")).where(*plain),
                key,
                tickets.c.id,
                descending,
            )
            .limit(TEXT_SCAN_WINDOW)
            .subquery("recent")
        )
        adapt = ClauseAdapter(recent).traverse
        first = _ordered(
            select(*(recent.c[c.name] for c in TICKET_COLUMNS), recent.c.sort_value).where(
                *(adapt(condition) for condition in narrow)
            ),
            recent.c.sort_value,
            recent.c.id,
            descending,
        ).limit(limit + 1)
        rows: Sequence[RowMapping] = (await self._conn.execute(first)).mappings().all()
        if len(rows) > limit:
            return rows
        matches = (
            select(tickets.c.id, key.label("sort_value"))
            .where(*plain, *narrow)
            .cte("matches")
            .prefix_with("MATERIALIZED")
        )
        page = (
            _ordered(
                select(matches.c.id, matches.c.sort_value),
                matches.c.sort_value,
                matches.c.id,
                descending,
            )
            .limit(limit + 1)
            .subquery("page")
        )
        every = _ordered(
            select(*TICKET_COLUMNS, page.c.sort_value).join(page, page.c.id == tickets.c.id),
            page.c.sort_value,
            tickets.c.id,
            descending,
        )
        matched: Sequence[RowMapping] = (await self._conn.execute(every)).mappings().all()
        return matched


# The columns the typed query's conditions read besides a ticket's own.
_SEARCHED = [
    tickets.c.search,
    tickets.c.priority_rank,
    tickets.c.due_sort,
    tickets.c.open_blockers,
]


def _split_on_sort_key(
    query: TicketQuery, key: ColumnElement[Any]
) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    """The query's ranges on the sort column (the sort index's own conditions, which
    bound the walk instead of filtering it) and the rest of its narrowing conditions."""
    on_key = [
        _condition(c, query.project_ids)
        for c in query.conditions
        if isinstance(c, Compare) and _COMPARED[c.column] is key
    ]
    rest = [
        _condition(c, query.project_ids)
        for c in query.conditions
        if not (isinstance(c, Compare) and _COMPARED[c.column] is key)
    ]
    text = [_text_match(query)] if query.text else []
    return on_key, [*text, *rest]


COMMENTS = Columns(Comment, comments, load={"mentions": list})
# What an edit or a deletion may change.
_COMMENT_CHANGES = COMMENTS.without("id", "ticket_id", "author_id", "created_at")
_comment = COMMENTS.from_row
HISTORY = Columns(HistoryEntry, history)
CLAIMS = Columns(IdempotencyClaim, idempotency_keys, supplied=("created_at",))


class SqlCommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, comment: Comment) -> None:
        await self._session.execute(insert(comments).values(COMMENTS.values(comment)))

    async def get(self, comment_id: uuid.UUID, *, for_update: bool = False) -> Comment | None:
        query = select(comments).where(comments.c.id == comment_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        return _comment(row) if row else None

    async def update(self, comment: Comment) -> None:
        await self._session.execute(
            update(comments)
            .where(comments.c.id == comment.id)
            .values(_COMMENT_CHANGES.values(comment))
        )

    async def list(
        self, ticket_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Comment]:
        query = (
            select(comments)
            .where(comments.c.ticket_id == ticket_id, comments.c.deleted_at.is_(None))
            .order_by(comments.c.created_at, comments.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(comments.c.created_at, comments.c.id) > after)
        rows = (await self._session.execute(query)).mappings().all()
        return [_comment(row) for row in rows]


class SqlHistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entries: list[HistoryEntry]) -> None:
        if not entries:
            return
        # The id is the database's (an identity column): never written.
        await self._session.execute(insert(history), [HISTORY.values(e) for e in entries])

    async def list(
        self, ticket_id: uuid.UUID, *, after: int | None, limit: int
    ) -> list[HistoryEntry]:
        query = (
            select(history)
            .where(history.c.ticket_id == ticket_id)
            .order_by(history.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(history.c.id > after)
        rows = (await self._session.execute(query)).mappings().all()
        return [HISTORY.from_row(row) for row in rows]


class SqlWatcherRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, ticket_id: uuid.UUID, user_id: uuid.UUID, since: datetime) -> bool:
        driver = await session_driver(self._session)
        return await driver.fetchval(_ADD_WATCHER, ticket_id, user_id, since) is not None

    async def add_many(
        self, watches: Sequence[tuple[uuid.UUID, uuid.UUID]], since: datetime
    ) -> None:
        if watches:
            rows = [{"ticket_id": t, "user_id": u, "since": since} for t, u in watches]
            await self._session.execute(pg_insert(watchers).values(rows).on_conflict_do_nothing())

    async def list_many(self, ticket_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        found: dict[uuid.UUID, list[uuid.UUID]] = {ticket_id: [] for ticket_id in ticket_ids}
        rows = await self._session.execute(
            select(watchers.c.ticket_id, watchers.c.user_id)
            .where(watchers.c.ticket_id.in_(list(ticket_ids)))
            .order_by(watchers.c.ticket_id, watchers.c.since, watchers.c.user_id)
        )
        for ticket_id, user_id in rows:
            found[ticket_id].append(user_id)
        return found

    async def remove(self, ticket_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self._session.execute(
            delete(watchers)
            .where(watchers.c.ticket_id == ticket_id, watchers.c.user_id == user_id)
            .returning(watchers.c.user_id)
        )
        return result.first() is not None

    async def remove_in_project(self, project_id: uuid.UUID, user_id: uuid.UUID) -> int:
        in_project = select(tickets.c.id).where(tickets.c.project_id == project_id)
        result = await self._session.execute(
            delete(watchers)
            .where(watchers.c.user_id == user_id, watchers.c.ticket_id.in_(in_project))
            .returning(watchers.c.ticket_id)
        )
        return len(result.all())

    async def list(self, ticket_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._session.scalars(
            select(watchers.c.user_id)
            .where(watchers.c.ticket_id == ticket_id)
            .order_by(watchers.c.since, watchers.c.user_id)
        )
        return list(rows)


class SqlIdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        k = idempotency_keys.c
        now = datetime.now(UTC)
        # An expired claim of the same key is forgotten first.
        await self._session.execute(
            delete(idempotency_keys).where(
                and_(
                    k.user_id == claim.user_id,
                    k.scope == claim.scope,
                    k.key == claim.key,
                    k.created_at < now - IDEMPOTENCY_TTL,
                )
            )
        )
        inserted = await self._session.execute(
            pg_insert(idempotency_keys)
            .values({**CLAIMS.values(claim), "created_at": now})
            .on_conflict_do_nothing()
            .returning(k.key)
        )
        if inserted.first() is not None:
            return None
        row = (
            await self._session.execute(
                select(k.fingerprint, k.resource_id).where(
                    k.user_id == claim.user_id, k.scope == claim.scope, k.key == claim.key
                )
            )
        ).first()
        if row is None:  # pragma: no cover - deleted between the two statements
            return None
        return IdempotencyClaim(
            claim.user_id, claim.scope, claim.key, row.fingerprint, row.resource_id
        )
