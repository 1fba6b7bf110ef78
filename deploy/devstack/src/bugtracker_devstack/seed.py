"""Fill a project with many tickets for benchmarks and manual trials (`make seed`).

Works on the PostgreSQL of a running `make up` (through its private unix socket, as the
superuser) and writes rows the way the services would: the project and its owner in the
projects schema, the tickets with gapless keys and the project's counter in the tickets
schema. Tickets are written with COPY, so a million take minutes, not hours.

The seeded tickets carry planning data at scale too (docs/adr/0039): the project has
MILESTONES milestones, each holding MILESTONE_SHARE of the tickets (about 95,000 of a
million; the rest have none); one ticket in PARENT_EVERY is a parent of the CHILDREN
tickets after it; one in BLOCKED_EVERY is blocked by the ticket after it (a `blocks`
relation). Parents and blocked tickets are unfinished, so the data obeys the rule that a
ticket cannot be finished before its children and blockers. The load runs with
`session_replication_role = replica` (this session only): the milestone progress trigger
would otherwise update one of ten rows once per ticket, and the foreign keys, which the
rows satisfy by construction, would be checked once per row; the milestones' `total` and
`done`, and the blocked tickets' `open_blockers`, are counted afterwards in one UPDATE
each, as the triggers would have kept them.

Each ticket gets its status's `status_category` (of the default workflow) and, with
`fields`, values of three custom fields (docs/adr/0040) that the seeding defines on the
project when absent: `severity` (select, on every bug: low 50 %, normal 30 %, high 15 %,
critical 5 %), `estimate` (number 1..20, on ESTIMATE_SHARE of the tickets) and
`customer` (text, one of the 1,000 CUSTOMERS, on CUSTOMER_SHARE). The values go into the
ticket's `fields` and, one row each, into the `field_values` filter index, both with COPY.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

WORDS = [
    "login",
    "crash",
    "save",
    "export",
    "import",
    "search",
    "filter",
    "report",
    "dashboard",
    "email",
    "password",
    "token",
    "session",
    "upload",
    "download",
    "avatar",
    "profile",
    "settings",
    "billing",
    "invoice",
    "payment",
    "timeout",
    "memory",
    "leak",
    "slow",
    "query",
    "index",
    "cache",
    "queue",
    "retry",
    "broker",
    "webhook",
    "api",
    "docs",
    "mobile",
    "desktop",
    "dark",
    "mode",
    "layout",
    "button",
    "table",
    "chart",
    "pagination",
    "sort",
    "locale",
]
PRIORITIES = ("low", "medium", "medium", "high", "critical")
TYPES = ("bug", "bug", "feature", "task", "improvement")
STATUSES = ("open", "open", "in_progress", "in_review", "done", "closed")
LABELS = ("ui", "backend", "perf", "security", "docs", "mobile", "api")
ASSIGNED_SHARE = 0.3
DUE_SHARE = 0.2
UNFINISHED = ("open", "open", "in_progress", "in_review")
DONE_STATUSES = ("done", "closed")  # bugtracker_tickets.domain.tickets.DONE_STATUSES
# The default workflow's status categories (bugtracker_tickets.domain.configuration).
# A status not named here is `todo`.
CATEGORIES = {
    "in_progress": "in_progress",
    "in_review": "in_progress",
    "done": "done",
    "closed": "done",
}
# Custom fields (docs/adr/0040): (value, share of the field's tickets), rarest last.
SEVERITIES = (("low", 0.50), ("normal", 0.30), ("high", 0.15), ("critical", 0.05))
SEVERITY_TYPES = ("bug",)  # the ticket types that have `severity`; every one of them has it
ESTIMATE_SHARE = 0.6  # of the tickets, an integer 1..ESTIMATE_MAX each
ESTIMATE_MAX = 20
CUSTOMER_SHARE = 0.2  # of the tickets, one of CUSTOMERS each
_FIRMS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Wonka", "Stark",
    "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Oscorp", "Gringotts", "Monarch", "Nakatomi",
    "Virtucon", "Aperture", "Massive", "Dunder", "Sterling", "Pied", "Prestige", "Bluth",
    "Krusty", "Duff", "Gekko", "Rekall", "Yoyodyne", "Zorg", "Ollivander", "Sirius",
    "Tessier", "Weyland", "Blue", "Red", "Green", "Silver", "Golden", "Northern",
)  # fmt: skip
_KINDS = (
    "Labs", "Systems", "Logistics", "Foods", "Media", "Holdings", "Energy", "Motors",
    "Software", "Bank", "Airlines", "Robotics", "Health", "Studios", "Retail", "Mining",
    "Textiles", "Insurance", "Pharma", "Telecom", "Shipping", "Games", "Hotels", "Farms",
    "Consulting",
)  # fmt: skip
CUSTOMERS = tuple(f"{firm} {kind}" for firm in _FIRMS for kind in _KINDS)  # 1,000 names
FIELD_COLUMNS = ("ticket_id", "field_id", "value", "number")
MILESTONES = 10
MILESTONE_SHARE = 0.095  # of the tickets, per milestone
PARENT_EVERY = 100  # ticket i of a seeding (0-based) with i % 100 == 0 is a parent ...
CHILDREN = 3  # ... of the next 3: 10,000 parents and 30,000 children per million
BLOCKED_EVERY = 100  # i % 100 == BLOCKED_AT is blocked by the ticket after it: 1 %
BLOCKED_AT = 50
COLUMNS = (
    "id",
    "project_id",
    "number",
    "key",
    "title",
    "description",
    "description_html",
    "type",
    "priority",
    "status",
    "status_category",
    "resolution",
    "reporter_id",
    "assignee_id",
    "labels",
    "due_date",
    "created_at",
    "updated_at",
    "version",
    "milestone_id",
    "parent_id",
    "fields",
)
RELATION_COLUMNS = ("id", "source_id", "target_id", "type", "created_at", "created_by")


def ticket_id(project_id: uuid.UUID, number: int) -> uuid.UUID:
    """A seeded ticket's id, derived from its number: a batch can name a parent or a
    blocker written by an earlier batch without reading it back."""
    return uuid.uuid5(project_id, str(number))


def _milestone_of(rng: random.Random, milestones: list[uuid.UUID]) -> uuid.UUID | None:
    share = rng.random()
    if not milestones or share >= MILESTONE_SHARE * len(milestones):
        return None
    return milestones[int(share / MILESTONE_SHARE)]


def _parent_of(first: int, number: int) -> int | None:
    """The parent's number of a seeded ticket (`first`: this seeding's first number)."""
    place = (number - first) % PARENT_EVERY
    return number - place if 1 <= place <= CHILDREN else None


def _is_parent(first: int, number: int) -> bool:
    return (number - first) % PARENT_EVERY == 0


def _is_blocked(first: int, number: int) -> bool:
    return (number - first) % BLOCKED_EVERY == BLOCKED_AT


@dataclass(frozen=True)
class Batch:
    project_id: uuid.UUID
    key: str
    owner: uuid.UUID
    first: int  # the seeding's first number: parents and blocks are laid out from it
    start: int
    count: int
    milestones: list[uuid.UUID] = field(default_factory=list)
    planning: bool = True
    fields: SeedFields | None = None


@dataclass(frozen=True)
class SeedFields:
    """The ids of the project's seeded custom fields (`_custom_fields`)."""

    severity: uuid.UUID
    estimate: uuid.UUID
    customer: uuid.UUID


def _field_values(
    rng: random.Random,
    fields: SeedFields,
    ticket: uuid.UUID,
    ticket_type: str,
    index: list[tuple[object, ...]],
) -> dict[str, object]:
    """A ticket's custom field values (its `fields`); their `field_values` rows go to
    `index`, as the tickets service indexes them (text in `value`, numbers in `number`)."""
    values: dict[str, object] = {}
    if ticket_type in SEVERITY_TYPES:
        severity = rng.choices([v for v, _ in SEVERITIES], [w for _, w in SEVERITIES])[0]
        values["severity"] = severity
        index.append((ticket, fields.severity, severity, None))
    if rng.random() < ESTIMATE_SHARE:
        estimate = rng.randint(1, ESTIMATE_MAX)
        values["estimate"] = estimate
        index.append((ticket, fields.estimate, None, float(estimate)))
    if rng.random() < CUSTOMER_SHARE:
        customer = rng.choice(CUSTOMERS)
        values["customer"] = customer
        index.append((ticket, fields.customer, customer, None))
    return values


def _rows(
    batch: Batch, index: list[tuple[object, ...]] | None = None
) -> Iterator[tuple[object, ...]]:
    """The batch's ticket rows; with `batch.fields`, their custom field values' rows in
    the filter index are appended to `index` as the rows are made."""
    rng = random.Random(batch.start)  # noqa: S311 (test data, not security)
    # Its own generator: the other columns stay what they were before custom fields.
    field_rng = random.Random(-batch.start)  # noqa: S311
    now = datetime.now(UTC)
    today = now.date()
    project_id, key, owner, first = batch.project_id, batch.key, batch.owner, batch.first
    for number in range(batch.start, batch.start + batch.count):
        created = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
        status = rng.choice(STATUSES)
        milestone = _milestone_of(rng, batch.milestones)
        parent = _parent_of(first, number) if batch.planning else None
        if batch.planning and (_is_parent(first, number) or _is_blocked(first, number)):
            status = rng.choice(UNFINISHED)
        # Plain lower-case words (WORDS): markdown renders them as exactly one paragraph,
        # stored as the tickets service stores it on write (docs/adr/0025).
        description = " ".join(rng.choices(WORDS, k=rng.randrange(10, 40)))
        ticket = ticket_id(project_id, number)
        title = " ".join(rng.choices(WORDS, k=rng.randrange(3, 8))).capitalize()
        ticket_type = rng.choice(TYPES)
        values: dict[str, object] = {}
        if batch.fields is not None and index is not None:
            values = _field_values(field_rng, batch.fields, ticket, ticket_type, index)
        yield (
            ticket,
            project_id,
            number,
            f"{key}-{number}",
            title,
            description,
            f"<p>{description}</p>\n",
            ticket_type,
            rng.choice(PRIORITIES),
            status,
            CATEGORIES.get(status, "todo"),
            "fixed" if status in DONE_STATUSES else None,
            owner,
            owner if rng.random() < ASSIGNED_SHARE else None,
            rng.sample(LABELS, k=rng.randrange(0, 3)),
            today + timedelta(days=rng.randrange(1, 200)) if rng.random() < DUE_SHARE else None,
            created,
            created + timedelta(minutes=rng.randrange(0, 600)),
            1,
            milestone,
            ticket_id(project_id, parent) if parent is not None else None,
            json.dumps(values),
        )


def _relations(batch: Batch) -> Iterator[tuple[object, ...]]:
    """`blocks` relations, each written with its blocker: the ticket after a blocked one."""
    now = datetime.now(UTC)
    for number in range(max(batch.start, batch.first + 1), batch.start + batch.count):
        if _is_blocked(batch.first, number - 1):
            yield (
                uuid.uuid4(),
                ticket_id(batch.project_id, number),
                ticket_id(batch.project_id, number - 1),
                "blocks",
                now,
                batch.owner,
            )


async def _milestones(
    conn: asyncpg.Connection, project_id: uuid.UUID, count: int
) -> list[uuid.UUID]:
    """The project's seeded milestones `Seed milestone 1..count`, made when absent."""
    ids: list[uuid.UUID] = []
    now = datetime.now(UTC)
    for n in range(1, count + 1):
        name = f"Seed milestone {n}"
        found = await conn.fetchval(
            "SELECT id FROM tickets.milestones WHERE project_id = $1 AND lower(name) = lower($2) "
            "AND deleted_at IS NULL",
            project_id,
            name,
        )
        if found is None:
            found = uuid.uuid4()
            await conn.execute(
                "INSERT INTO tickets.milestones (id, project_id, name, description, due_date, "
                "state, created_at, updated_at, version, total, done) "
                "VALUES ($1, $2, $3, '', $4, 'open', $5, $5, 1, 0, 0)",
                found,
                project_id,
                name,
                now.date() + timedelta(days=30 * n),
                now,
            )
        ids.append(found)
    return ids


# The seeded custom fields: key -> (name, type, options, ticket types, description).
_FIELD_DEFINITIONS: dict[str, tuple[str, str, list[dict[str, str]], list[str] | None, str]] = {
    "severity": (
        "Severity",
        "select",
        [{"value": v, "label": v.capitalize()} for v, _ in SEVERITIES],
        list(SEVERITY_TYPES),
        "How bad the bug is (seeded).",
    ),
    "estimate": ("Estimate", "number", [], None, "Effort in points (seeded)."),
    "customer": ("Customer", "text", [], None, "The customer who reported it (seeded)."),
}


async def _custom_fields(conn: asyncpg.Connection, project_id: uuid.UUID) -> SeedFields:
    """The project's seeded custom fields, defined when absent (as the tickets service
    defines them: positions after the project's other fields, version 1)."""
    ids: dict[str, uuid.UUID] = {}
    now = datetime.now(UTC)
    for key, (name, kind, options, types, description) in _FIELD_DEFINITIONS.items():
        found = await conn.fetchrow(
            "SELECT id, type, deleted_at FROM tickets.custom_fields "
            "WHERE project_id = $1 AND key = $2",
            project_id,
            key,
        )
        if found is not None:
            if found["type"] != kind or found["deleted_at"] is not None:
                raise SystemExit(
                    f"project field {key!r} exists as a {found['type']} field"
                    f"{' (deleted)' if found['deleted_at'] else ''}; the seed needs a {kind} one"
                )
            ids[key] = found["id"]
            continue
        ids[key] = uuid.uuid4()
        await conn.execute(
            "INSERT INTO tickets.custom_fields (id, project_id, key, name, type, options, "
            "required, ticket_types, description, position, created_at, updated_at, version) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, false, $7, $8, "
            "(SELECT coalesce(max(position) + 1, 0) FROM tickets.custom_fields "
            "WHERE project_id = $2), $9, $9, 1)",
            ids[key],
            project_id,
            key,
            name,
            kind,
            json.dumps(options),
            types,
            description,
            now,
        )
    return SeedFields(**ids)


# What the progress trigger of migrations 0005/0006 keeps, counted at once for the project.
_COUNT_PROGRESS = """
UPDATE tickets.milestones m
SET total = coalesce(c.total, 0), done = coalesce(c.done, 0)
FROM tickets.milestones m2 LEFT JOIN (
    SELECT milestone_id, count(*) AS total,
           count(*) FILTER (WHERE status_category = 'done') AS done
    FROM tickets.tickets
    WHERE milestone_id = ANY($1::uuid[]) AND deleted_at IS NULL
    GROUP BY milestone_id
) c ON c.milestone_id = m2.id
WHERE m.id = m2.id AND m.id = ANY($1::uuid[])
"""

# What the blockers triggers of migrations 0005/0006 keep (`open_blockers`), counted at
# once for the tickets the project's live, unfinished tickets block.
_COUNT_BLOCKERS = """
UPDATE tickets.tickets t SET open_blockers = c.blockers
FROM (
    SELECT r.target_id, count(*) AS blockers
    FROM tickets.relations r JOIN tickets.tickets s ON s.id = r.source_id
    WHERE r.type = 'blocks' AND s.project_id = $1 AND s.deleted_at IS NULL
      AND s.status_category <> 'done'
    GROUP BY r.target_id
) c
WHERE t.id = c.target_id AND t.open_blockers <> c.blockers
"""


async def _project(conn: asyncpg.Connection, key: str, owner: uuid.UUID) -> uuid.UUID:
    """Project `key`'s id; made, with `owner` as its owner, when absent."""
    project_id: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM projects.projects WHERE key = $1", key
    )
    if project_id is not None:
        return project_id
    project_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO projects.projects (id, key, name, description, created_by, "
            "created_at, updated_at, version) VALUES ($1, $2, $3, '', $4, $5, $5, 1)",
            project_id,
            key,
            f"Seeded project {key}",
            owner,
            now,
        )
        await conn.execute(
            "INSERT INTO projects.memberships (project_id, user_id, display_name, role, "
            "added_at) VALUES ($1, $2, 'Administrator', 'owner', $3)",
            project_id,
            owner,
            now,
        )
    return project_id


async def seed(
    dsn: str,
    *,
    key: str,
    tickets: int,
    owner_email: str,
    batch: int = 50_000,
    planning: bool = True,
    fields: bool = True,
) -> None:
    """Add `tickets` tickets to project `key` (made when absent); with `planning`, its
    milestones, parents and children, and `blocks` relations too; with `fields`, the
    custom fields' values (module docstring)."""
    conn = await asyncpg.connect(dsn)
    try:
        owner = await conn.fetchval(
            "SELECT id FROM auth.users WHERE email = $1", owner_email.lower()
        )
        if owner is None:
            raise SystemExit(f"no user {owner_email}; start `make up` once first")
        project_id = await _project(conn, key, owner)
        start = 1 + (
            await conn.fetchval(
                "SELECT last_number FROM tickets.project_counters WHERE project_id = $1",
                project_id,
            )
            or 0
        )
        began = time.monotonic()
        milestones = await _milestones(conn, project_id, MILESTONES) if planning else []
        custom = await _custom_fields(conn, project_id) if fields else None
        # This session only: no progress or blockers triggers (counted below) and no foreign
        # key checks (the rows satisfy them by construction) while loading.
        await conn.execute("SET session_replication_role = replica")
        written = relations = values = 0
        while written < tickets:
            count = min(batch, tickets - written)
            part = Batch(
                project_id=project_id,
                key=key,
                owner=owner,
                first=start,
                start=start + written,
                count=count,
                milestones=milestones,
                planning=planning,
                fields=custom,
            )
            index: list[tuple[object, ...]] = []
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "tickets", schema_name="tickets", columns=COLUMNS, records=_rows(part, index)
                )
                if index:
                    await conn.copy_records_to_table(
                        "field_values", schema_name="tickets", columns=FIELD_COLUMNS, records=index
                    )
                    values += len(index)
                if planning:
                    blocks = list(_relations(part))
                    await conn.copy_records_to_table(
                        "relations",
                        schema_name="tickets",
                        columns=RELATION_COLUMNS,
                        records=blocks,
                    )
                    relations += len(blocks)
                await conn.execute(
                    "INSERT INTO tickets.project_counters (project_id, last_number) "
                    "VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET last_number = $2",
                    project_id,
                    start + written + count - 1,
                )
            written += count
            rate = written / (time.monotonic() - began)
            print(f"  {written:>9,} tickets  ({rate:,.0f}/s)", flush=True)
        await conn.execute("RESET session_replication_role")
        loaded = time.monotonic() - began
        if planning:
            await conn.execute(_COUNT_PROGRESS, milestones)
            await conn.execute(_COUNT_BLOCKERS, project_id)
            parents = len(range(0, tickets, PARENT_EVERY))
            print(
                f"  planning: {MILESTONES} milestones (progress and blockers counted in "
                f"{time.monotonic() - began - loaded:.1f} s), about {parents:,} parents with "
                f"up to {CHILDREN} children each, {relations:,} blocks relations",
                flush=True,
            )
        await conn.execute("ANALYZE tickets.tickets")
        await conn.execute("ANALYZE tickets.relations")
        await conn.execute("ANALYZE tickets.milestones")
        if fields:
            await conn.execute("ANALYZE tickets.field_values")
            print(f"  custom fields: severity, estimate, customer; {values:,} values", flush=True)
        print(f"seeded {tickets:,} tickets into {key} in {time.monotonic() - began:.0f} s")
    finally:
        await conn.close()
