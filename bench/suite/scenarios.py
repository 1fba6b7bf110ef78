"""The scenarios: what each sends, where, and with whose tokens.

Each wrk scenario builds its plan just before a run (after the warm-up too), so tokens are
fresh and the assign scenario knows every ticket's current assignee.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from suite.api import Api
from suite.baseline import Baseline
from suite.config import Environment, Options
from suite.fixtures import ASSIGN_POOL, COMMON_WORD, RARE_WORD, Fixture, Project, User
from suite.wrk import Plan

GATEWAY = "Through the gateway (project BENCH, 10k tickets)"
DIRECT = "Directly on the tickets service, without the gateway"
BASELINE = "Baseline: bare FastAPI + asyncpg (bench/baseline_app.py)"
SCALE = "Scale: the scale project (1M tickets), through the gateway"
GROUPS = (GATEWAY, DIRECT, BASELINE, SCALE)
PAGE = 25
GET_KEYS = 10_000
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
        assignees=[user.id for user in users],
        assign=[
            (
                f"/api/v1/tickets/{bench.key}-{n}/assignee",
                other_than(users, current.get(n), n % len(users)),
            )
            for n in numbers
        ],
    )


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
)
# The scale scenarios and the 10k ones they are compared with.
SCALE_PAIRS = {
    "scale-list": "list",
    "scale-list-status": "list-status",
    "scale-search": "search",
    "scale-search-rare": "search-rare",
}
DIRECT_PAIRS = {"direct-create": "create", "direct-list": "list", "direct-get": "get"}
