"""The scenarios: what each sends, where, and with whose tokens.

Each wrk scenario builds its plan just before a run (after the warm-up too), so tokens are
fresh and the assign scenario knows every ticket's current assignee.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg

from suite.api import Api
from suite.baseline import Baseline
from suite.config import Environment, Options
from suite.fixtures import ASSIGN_POOL, COMMON_WORD, RARE_WORD, Fixture, Project, User
from suite.wrk import Item, Plan

GATEWAY = "Through the gateway (project BENCH, 10k tickets)"
DIRECT = "Directly on the tickets service, without the gateway"
BASELINE = "Baseline: bare FastAPI + asyncpg (bench/baseline_app.py)"
SCALE = "Scale: the scale project (1M tickets), through the gateway"
GROUPS = (GATEWAY, DIRECT, BASELINE, SCALE)
PAGE = 25
GET_KEYS = 10_000
BULK_SIZE = 100  # tickets per bulk request: the API's maximum
BULK_TICKETS = 3000  # BENCH-1..3000 in 30 groups, 15 per wrk thread
BULK_MAX_CONCURRENCY = 10  # 5 per thread: a group comes round again after 15 requests
BULK_PRIORITIES = ("low", "high")  # each request sets the one its group does not have
PLANNING_SAMPLE = 1000  # parents the parent and children scenarios rotate over
SEEDED_FIELDS = ("severity", "estimate", "customer")  # `make seed`'s custom fields
CREATE_BODY = (
    '{"title":"Bench %d: crash on save","description":"Steps: log in, open the '
    "dashboard, export a report.\\n\\nThe **export** button does nothing and the "
    'session ends.","type":"bug","priority":"medium","labels":["ui","perf"]}'
)
BASELINE_BODY = (
    '{"title":"Bench %d: crash on save","description":"Steps: log in, open the '
    'dashboard, export a report.","priority":"medium","labels":["ui","perf"]}'
)


@dataclass
class Context:
    env: Environment
    options: Options
    api: Api
    fixture: Fixture
    baseline: Baseline | None = None
    planning: Planning | None = None
    fields: SeededFields | None = None

    def url(self, via: str) -> str:
        if via == "baseline":
            if self.baseline is None:
                raise RuntimeError("the baseline app is not running")
            return self.baseline.url
        return self.env.url(via)

    def tokens(self) -> list[str]:
        return self.fixture.tokens()

    def scale_project(self) -> Project:
        if self.fixture.scale is None:
            raise RuntimeError("the scale project is not set up")
        return self.fixture.scale


PlanBuilder = Callable[[Context, str], Awaitable[Plan]]


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    via: str  # the process the load goes to: gateway, tickets or baseline
    what: str
    build: PlanBuilder | None  # None: the notification latency driver (suite/notify.py)
    max_concurrency: int | None = None  # runs at min(c, this) for each --concurrency c

    def levels(self, concurrency: Sequence[int]) -> list[int]:
        """The concurrencies this scenario runs at."""
        cap = self.max_concurrency
        return sorted({min(c, cap) if cap else c for c in concurrency})

    @property
    def needs_scale(self) -> bool:
        return self.group == SCALE

    @property
    def needs_baseline(self) -> bool:
        return self.via == "baseline"


def _shuffled(paths: list[str]) -> list[str]:
    random.Random(11).shuffle(paths)  # a fixed order: every run visits the same keys
    return paths


async def current_assignees(
    env: Environment, project: Project, numbers: Sequence[int]
) -> dict[int, str | None]:
    """Each ticket's assignee now, read from the tickets schema (superuser, read only)."""
    conn = await asyncpg.connect(env.superuser_dsn())
    try:
        rows = await conn.fetch(
            "SELECT number, assignee_id FROM tickets.tickets "
            "WHERE project_id = $1 AND number = ANY($2::int[])",
            uuid.UUID(project.id),
            list(numbers),
        )
    finally:
        await conn.close()
    return {row["number"]: str(row["assignee_id"]) if row["assignee_id"] else None for row in rows}


def other_than(users: Sequence[User], current: str | None, offset: int) -> int:
    """The index of the first user from `offset` on who is not the current assignee."""
    for step in range(len(users)):
        index = (offset + step) % len(users)
        if users[index].id != current:
            return index
    raise RuntimeError("no other user to assign to")


def _list(project: Project, query: str = "") -> str:
    return f"/api/v1/projects/{project.id}/tickets?limit={PAGE}{query}"


def lister(query: str = "", *, scale: bool = False) -> PlanBuilder:
    async def build(ctx: Context, via: str) -> Plan:
        project = ctx.scale_project() if scale else ctx.fixture.bench
        return Plan(ctx.url(via), paths=[_list(project, query)], tokens=ctx.tokens())

    return build


async def create(ctx: Context, via: str) -> Plan:
    return Plan(
        ctx.url(via),
        method="POST",
        paths=[f"/api/v1/projects/{ctx.fixture.writes.id}/tickets"],
        tokens=ctx.tokens(),
        body=CREATE_BODY,
    )


async def get_one(ctx: Context, via: str) -> Plan:
    bench = ctx.fixture.bench
    count = min(bench.tickets, GET_KEYS)
    paths = [f"/api/v1/tickets/{bench.key}-{n}" for n in range(1, count + 1)]
    return Plan(ctx.url(via), paths=_shuffled(paths), tokens=ctx.tokens())


async def assign(ctx: Context, via: str) -> Plan:
    """PUT the assignee of BENCH-1..2000 in turn; every request changes the assignee."""
    bench, users = ctx.fixture.bench, ctx.fixture.users
    numbers = range(1, ASSIGN_POOL + 1)
    current = await current_assignees(ctx.env, bench, numbers)
    return Plan(
        ctx.url(via),
        method="PUT",
        tokens=ctx.tokens(),
        values=[user.id for user in users],
        items=[
            Item(
                f"/api/v1/tickets/{bench.key}-{n}/assignee",
                other_than(users, current.get(n), n % len(users)),
            )
            for n in numbers
        ],
        item_body='{"assignee_id":"$VALUE"}',
    )


async def _bulk_priorities(env: Environment, project: Project) -> dict[int, set[str]]:
    """Each bulk group's priorities now (BENCH-1..BULK_TICKETS, BULK_SIZE per group)."""
    conn = await asyncpg.connect(env.superuser_dsn())
    try:
        rows = await conn.fetch(
            "SELECT (number - 1) / $3 AS grp, array_agg(DISTINCT priority) AS priorities "
            "FROM tickets.tickets WHERE project_id = $1 AND number BETWEEN 1 AND $2 "
            "AND deleted_at IS NULL GROUP BY 1",
            uuid.UUID(project.id),
            BULK_TICKETS,
            BULK_SIZE,
        )
    finally:
        await conn.close()
    return {row["grp"]: set(row["priorities"]) for row in rows}


async def _tickets_quiet(env: Environment, seconds: float = 30.0) -> None:
    """Wait until no transaction of the tickets service has been open for long: a bulk
    change of the warm-up that wrk gave up on may still be running, and would commit
    after the groups' priorities are read."""
    conn = await asyncpg.connect(env.superuser_dsn())
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bugtracker_tickets' "
                "AND state IN ('active', 'idle in transaction') "
                "AND xact_start < now() - interval '100 milliseconds'"
            )
            if not busy:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _bulk_refs(project: Project, group: int) -> list[str]:
    first = group * BULK_SIZE + 1
    return [f"{project.key}-{n}" for n in range(first, first + BULK_SIZE)]


async def bulk(ctx: Context, via: str) -> Plan:
    """POST .../tickets/bulk, 100 tickets per request, each setting the priority its group
    does not have: every request changes 100 tickets. The groups' priorities are read from
    the database first; a group that is not all one of BULK_PRIORITIES (freshly seeded)
    is set to the first once, by the admin, before the run. Run at most at
    BULK_MAX_CONCURRENCY: more requests in flight than groups per thread would make two
    of them wait for each other's row locks."""
    bench = ctx.fixture.bench
    groups = min(bench.tickets, BULK_TICKETS) // BULK_SIZE
    path = f"/api/v1/projects/{bench.id}/tickets/bulk"
    await _tickets_quiet(ctx.env)
    current = await _bulk_priorities(ctx.env, bench)
    for group in range(groups):
        if len(current.get(group, set())) != 1 or not current[group] <= set(BULK_PRIORITIES):
            print(f"  bulk: setting BENCH group {group + 1}/{groups} to one priority", flush=True)
            await ctx.api.call(
                "POST",
                path,
                token=ctx.fixture.admin.token,
                json={"tickets": _bulk_refs(bench, group), "set": {"priority": BULK_PRIORITIES[0]}},
            )
            current[group] = {BULK_PRIORITIES[0]}
    items = []
    for group in range(groups):
        now = BULK_PRIORITIES.index(next(iter(current[group])))
        refs = json.dumps(_bulk_refs(bench, group), separators=(",", ":"))
        items.append(Item(path, (now + 1) % len(BULK_PRIORITIES), refs))
    return Plan(
        ctx.url(via),
        method="POST",
        tokens=ctx.tokens(),
        values=list(BULK_PRIORITIES),
        items=items,
        item_body='{"tickets":$PAYLOAD,"set":{"priority":"$VALUE"}}',
    )


@dataclass(frozen=True)
class Planning:
    """The scale project's planning data that `make seed` made (devstack seed.py)."""

    milestone: str  # the id of the milestone with the most tickets
    milestone_total: int
    parents: list[tuple[str, str]]  # (id, key) of parents with children


async def planning(ctx: Context) -> Planning:
    """Read once per suite run from the tickets schema (superuser, read only)."""
    if ctx.planning is not None:
        return ctx.planning
    project = ctx.scale_project()
    conn = await asyncpg.connect(ctx.env.superuser_dsn())
    try:
        milestone = await conn.fetchrow(
            "SELECT id, total FROM tickets.milestones WHERE project_id = $1 "
            "AND deleted_at IS NULL ORDER BY total DESC, id LIMIT 1",
            uuid.UUID(project.id),
        )
        parents = await conn.fetch(
            "SELECT p.id, p.key FROM tickets.tickets p WHERE p.project_id = $1 "
            "AND p.deleted_at IS NULL AND EXISTS (SELECT FROM tickets.tickets c "
            "WHERE c.parent_id = p.id AND c.deleted_at IS NULL) ORDER BY p.number LIMIT $2",
            uuid.UUID(project.id),
            PLANNING_SAMPLE,
        )
    finally:
        await conn.close()
    if milestone is None or not parents:
        raise SystemExit(
            f"bench: project {project.key} has no milestones or no sub-tickets: it was "
            "seeded before `make seed` made planning data. Seed a new scale project "
            "(e.g. `--scale-project SEED2`) or start from a fresh .data/."
        )
    ctx.planning = Planning(
        milestone=str(milestone["id"]),
        milestone_total=milestone["total"],
        parents=[(str(row["id"]), row["key"]) for row in parents],
    )
    return ctx.planning


async def scale_milestone(ctx: Context, via: str) -> Plan:
    plan = await planning(ctx)
    return Plan(ctx.url(via), paths=[f"/api/v1/milestones/{plan.milestone}"], tokens=ctx.tokens())


def planning_lister(what: str) -> PlanBuilder:
    """A list of the scale project filtered by `milestone=` (the biggest milestone or
    none), `parent=` (rotating over the sampled parents) or `is=blocked`."""

    async def build(ctx: Context, via: str) -> Plan:
        plan, project = await planning(ctx), ctx.scale_project()
        queries = {
            "milestone": [f"&milestone={plan.milestone}"],
            "no-milestone": ["&milestone=none"],
            "parent": _shuffled([f"&parent={id_}" for id_, _ in plan.parents]),
            "blocked": ["&is=blocked"],
        }[what]
        return Plan(ctx.url(via), paths=[_list(project, q) for q in queries], tokens=ctx.tokens())

    return build


async def scale_children(ctx: Context, via: str) -> Plan:
    plan = await planning(ctx)
    paths = [f"/api/v1/tickets/{key}/children" for _, key in plan.parents]
    return Plan(ctx.url(via), paths=_shuffled(paths), tokens=ctx.tokens())


@dataclass(frozen=True)
class SeededFields:
    """The scale project's custom fields that `make seed` made (devstack seed.py): the
    `field.<key>` filters of the list (docs/adr/0040)."""

    customer: str  # one seeded customer name (the first by the value index)
    customer_tickets: int


async def seeded_fields(ctx: Context) -> SeededFields:
    """Read once per suite run from the tickets schema (superuser, read only)."""
    if ctx.fields is not None:
        return ctx.fields
    project = ctx.scale_project()
    conn = await asyncpg.connect(ctx.env.superuser_dsn())
    try:
        found = await conn.fetch(
            "SELECT key, id FROM tickets.custom_fields WHERE project_id = $1 "
            "AND deleted_at IS NULL AND key = ANY($2::text[])",
            uuid.UUID(project.id),
            list(SEEDED_FIELDS),
        )
        ids = {row["key"]: row["id"] for row in found}
        customer = None
        if "customer" in ids:
            customer = await conn.fetchval(
                "SELECT value FROM tickets.field_values WHERE field_id = $1 "
                "AND value IS NOT NULL ORDER BY value LIMIT 1",
                ids["customer"],
            )
        count = 0
        if customer is not None:
            count = await conn.fetchval(
                "SELECT count(*) FROM tickets.field_values WHERE field_id = $1 AND value = $2",
                ids["customer"],
                customer,
            )
    finally:
        await conn.close()
    if set(ids) != set(SEEDED_FIELDS) or customer is None:
        raise SystemExit(
            f"bench: project {project.key} has no seeded custom fields (severity, estimate, "
            "customer): it was seeded before `make seed` made them. Seed a new scale project "
            "(e.g. `--scale-project SEED2`) or start from a fresh .data/."
        )
    ctx.fields = SeededFields(customer=str(customer), customer_tickets=int(count))
    return ctx.fields


def field_lister(what: str) -> PlanBuilder:
    """A list of the scale project filtered by its seeded custom fields: `severity`
    (select; 50/30/15/5 % of the bugs low/normal/high/critical), `estimate` (number 1..20
    on 60 % of the tickets) and `customer` (text, one of 1,000 names on 20 %)."""

    async def build(ctx: Context, via: str) -> Plan:
        fields, project = await seeded_fields(ctx), ctx.scale_project()
        query = {
            "select": "&field.severity=critical",
            "common": "&field.severity=normal",
            "range": "&field.estimate.gte=15",
            "text": f"&field.customer={quote(fields.customer)}",
            "two": "&field.severity=high&field.estimate.lte=3",
        }[what]
        return Plan(ctx.url(via), paths=[_list(project, query)], tokens=ctx.tokens())

    return build


async def mine(ctx: Context, via: str) -> Plan:
    return Plan(
        ctx.url(via), paths=[f"/api/v1/tickets?assignee=me&limit={PAGE}"], tokens=ctx.tokens()
    )


async def baseline_insert(ctx: Context, via: str) -> Plan:
    return Plan(ctx.url(via), method="POST", paths=["/items"], body=BASELINE_BODY)


async def baseline_get(ctx: Context, via: str) -> Plan:
    rows = ctx.baseline.rows if ctx.baseline else 0
    return Plan(ctx.url(via), paths=_shuffled([f"/items/B-{n}" for n in range(1, rows + 1)]))


async def baseline_list(ctx: Context, via: str) -> Plan:
    return Plan(ctx.url(via), paths=[f"/items?limit={PAGE}"])


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("create", GATEWAY, "gateway", "POST a ticket into BENCHW", create),
    Scenario("list", GATEWAY, "gateway", "25 tickets, default sort (-updated_at)", lister()),
    Scenario(
        "list-status", GATEWAY, "gateway", "25 tickets with status=open", lister("&status=open")
    ),
    Scenario(
        "search",
        GATEWAY,
        "gateway",
        f"25 tickets matching q={COMMON_WORD} (about half of all), default sort",
        lister(f"&q={COMMON_WORD}"),
    ),
    Scenario(
        "search-rare",
        GATEWAY,
        "gateway",
        f"q={RARE_WORD} (5 tickets: a selective word)",
        lister(f"&q={RARE_WORD}"),
    ),
    Scenario("get", GATEWAY, "gateway", "one ticket by key, rotating over BENCH-1..10000", get_one),
    Scenario(
        "assign",
        GATEWAY,
        "gateway",
        "PUT .../assignee on BENCH-1..2000, a different user each time",
        assign,
    ),
    Scenario(
        "bulk",
        GATEWAY,
        "gateway",
        f"POST .../tickets/bulk: {BULK_SIZE} tickets of BENCH-1..{BULK_TICKETS} per request, "
        f"setting priority {' / '.join(BULK_PRIORITIES)} alternately (every ticket changes); "
        f"at most c={BULK_MAX_CONCURRENCY}",
        bulk,
        max_concurrency=BULK_MAX_CONCURRENCY,
    ),
    Scenario("mine", GATEWAY, "gateway", "GET /tickets?assignee=me across projects", mine),
    Scenario(
        "notify",
        GATEWAY,
        "gateway",
        "assignments at a fixed rate; time until the assignee's SSE stream shows them",
        None,
    ),
    Scenario("direct-create", DIRECT, "tickets", "as create, on :8003", create),
    Scenario("direct-list", DIRECT, "tickets", "as list, on :8003", lister()),
    Scenario("direct-get", DIRECT, "tickets", "as get, on :8003", get_one),
    Scenario("baseline-insert", BASELINE, "baseline", "one INSERT ... RETURNING", baseline_insert),
    Scenario("baseline-get", BASELINE, "baseline", "one SELECT by unique key", baseline_get),
    Scenario("baseline-list", BASELINE, "baseline", "one SELECT of 25 by index", baseline_list),
    Scenario("scale-list", SCALE, "gateway", "as list", lister(scale=True)),
    Scenario(
        "scale-list-status", SCALE, "gateway", "as list-status", lister("&status=open", scale=True)
    ),
    Scenario(
        "scale-search", SCALE, "gateway", "as search", lister(f"&q={COMMON_WORD}", scale=True)
    ),
    Scenario(
        "scale-search-rare",
        SCALE,
        "gateway",
        "as search-rare",
        lister(f"&q={RARE_WORD}", scale=True),
    ),
    Scenario(
        "scale-milestone",
        SCALE,
        "gateway",
        "GET /milestones/{id} of the biggest milestone (its progress: one row)",
        scale_milestone,
    ),
    Scenario(
        "scale-milestone-list",
        SCALE,
        "gateway",
        "25 tickets with milestone=<the biggest milestone>",
        planning_lister("milestone"),
    ),
    Scenario(
        "scale-no-milestone",
        SCALE,
        "gateway",
        "25 tickets with milestone=none",
        planning_lister("no-milestone"),
    ),
    Scenario(
        "scale-parent",
        SCALE,
        "gateway",
        f"25 tickets with parent=<id>, rotating over {PLANNING_SAMPLE:,} parents",
        planning_lister("parent"),
    ),
    Scenario(
        "scale-blocked",
        SCALE,
        "gateway",
        "25 tickets with is=blocked (an unfinished blocker)",
        planning_lister("blocked"),
    ),
    Scenario(
        "scale-children",
        SCALE,
        "gateway",
        f"GET /tickets/{{key}}/children, rotating over {PLANNING_SAMPLE:,} parents",
        scale_children,
    ),
    Scenario(
        "scale-field-select",
        SCALE,
        "gateway",
        "25 tickets with field.severity=critical (a select field's rare value: 5 % of bugs)",
        field_lister("select"),
    ),
    Scenario(
        "scale-field-common",
        SCALE,
        "gateway",
        "25 tickets with field.severity=normal (a common value: 30 % of bugs)",
        field_lister("common"),
    ),
    Scenario(
        "scale-field-range",
        SCALE,
        "gateway",
        "25 tickets with field.estimate.gte=15 (a number range: 30 % of the estimated)",
        field_lister("range"),
    ),
    Scenario(
        "scale-field-text",
        SCALE,
        "gateway",
        "25 tickets with field.customer=<one seeded name> (a text value: 1 in 5,000)",
        field_lister("text"),
    ),
    Scenario(
        "scale-field-two",
        SCALE,
        "gateway",
        "25 tickets with field.severity=high and field.estimate.lte=3 (two field filters)",
        field_lister("two"),
    ),
)
# The scale scenarios and the 10k ones they are compared with.
SCALE_PAIRS = {
    "scale-list": "list",
    "scale-list-status": "list-status",
    "scale-search": "search",
    "scale-search-rare": "search-rare",
}
DIRECT_PAIRS = {"direct-create": "create", "direct-list": "list", "direct-get": "get"}
