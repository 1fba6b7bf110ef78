"""Ticket queries and exports on the 1M-ticket project, against a running `make up`.

    uv run python bench/query_bench.py [--project SEED] [--runs 60] [--label after]

Through the gateway with the admin's token (the scale project's owner, as `make seed`
makes it; seed it first with `make seed` or a `make bench` run):

- every term of the query language alone, on the project's list (first page, 25
  tickets), then the five combinations teams use most, each `--runs` times one after
  another (after 3 warm-up requests): p50, p99 and max latency as the client sees it, and
  how many tickets the first page had;
- the bare baseline beside them: the same list without `query` (the fixed-parameter list
  of before), in the same session;
- exports of the whole project as CSV and NDJSON: rows per second, the time to the first
  byte, and how much the tickets service's and the gateway's memory peaked above where it
  started (the kernel's peak counter, reset first with `clear_refs`: needs root), beside
  the database alone (`COPY (SELECT ...) TO STDOUT` of the same rows as CSV, over the
  superuser's socket).

It measures; it does not assert. The table goes to stdout and bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from suite.config import Environment
from suite.cpu import listeners

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LIMIT = 25


def single_terms(key: str) -> list[tuple[str, str]]:
    """One query per kind of term, with values of the seed (seed.py's vocabulary)."""
    return [
        ("status (common)", "status:open"),
        ("status, two values", "status:in_review,done"),
        ("-status", "-status:closed"),
        ("type", "type:feature"),
        ("priority exact", "priority:critical"),
        ("priority range", "priority:>=high"),
        ("assignee:@me", "assignee:@me"),
        ("assignee:none", "assignee:none"),
        ("reporter:@me", "reporter:@me"),
        ("label", "label:security"),
        ("label nobody has", "label:nope"),
        ("-label", "-label:ui"),
        ("milestone", 'milestone:"Seed milestone 3"'),
        ("milestone:none", "milestone:none"),
        ("is:open", "is:open"),
        ("is:closed", "is:closed"),
        ("is:blocked", "is:blocked"),
        ("is:unassigned", "is:unassigned"),
        ("has:attachment", "has:attachment"),
        ("-has:attachment", "-has:attachment"),
        ("created: recent days", "created:>=" + _days_ago(3)),
        ("created: oldest days", "created:<" + _days_ago(362)),
        ("updated: last week", "updated:<7d"),
        ("updated: stale", "updated:>360d"),
        ("due: soon", "due:<3d"),
        ("due: a date", "due:<=" + _days_ahead(30)),
        ("field (select, rare)", "field.severity:critical"),
        ("field (number range)", "field.estimate:>=18"),
        ("field (text)", 'field.customer:"Acme Labs"'),
        ("parent", f"parent:{key}-1"),
        ("word (common)", "crash"),
        ("word (absent)", "segfault"),
        ("phrase", '"dark mode"'),
        ("-word", "-crash"),
        ("sort:priority-desc", "sort:priority-desc"),
        ("sort:due-asc", "sort:due-asc"),
    ]


def combinations() -> list[tuple[str, str]]:
    return [
        ("my open work by priority", "assignee:@me is:open sort:priority-desc"),
        ("open bugs in a release", 'type:bug is:open milestone:"Seed milestone 2"'),
        ("blocked criticals", "is:blocked priority:critical"),
        ("untriaged, not wontfix", "is:unassigned is:open -label:docs created:>=" + _days_ago(14)),
        ("stale open with a word", "is:open updated:>180d login"),
    ]


def _days_ago(days: int) -> str:
    return datetime.fromtimestamp(time.time() - days * 86400, UTC).date().isoformat()


def _days_ahead(days: int) -> str:
    return datetime.fromtimestamp(time.time() + days * 86400, UTC).date().isoformat()


@dataclass
class Timing:
    name: str
    query: str
    p50: float
    p99: float
    worst: float
    found: int


def timed(client: httpx.Client, path: str, params: dict[str, Any], runs: int) -> Timing:
    for _ in range(3):
        client.get(path, params=params).raise_for_status()
    took = []
    found = 0
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(path, params=params)
        took.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        found = len(response.json()["items"])
    took.sort()
    p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
    return Timing("", params.get("query", ""), statistics.median(took), p99, took[-1], found)


def _status(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


@dataclass
class Export:
    name: str
    rows: int
    seconds: float
    first_byte_ms: float
    growth_kb: dict[str, int]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def export(client: httpx.Client, path: str, accept: str, pids: dict[str, int]) -> Export:
    start = {}
    for name, pid in pids.items():
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        start[name] = _status(pid)["VmRSS"]
    began = time.perf_counter()
    first = 0.0
    rows = 0
    # The seed's 5 `segfault` tickets left out: exactly a million, the export's limit.
    params = {"query": "-segfault"}
    with client.stream(
        "GET", path, params=params, headers={"Accept": accept}, timeout=600
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if not first:
                first = (time.perf_counter() - began) * 1000
            rows += chunk.count(b"\n")
    seconds = time.perf_counter() - began
    growth = {name: _status(pid)["VmHWM"] - start[name] for name, pid in pids.items()}
    if accept == "text/csv":
        rows -= 1  # the header
    return Export(accept, rows, seconds, first, growth)


async def database_copy(env: Environment, key: str) -> Export:
    """The database alone: the project's live tickets as CSV, as `COPY ... TO STDOUT`."""
    conn = await asyncpg.connect(env.superuser_dsn())
    rows = 0

    async def count(chunk: bytes) -> None:
        nonlocal rows
        rows += chunk.count(b"\n")

    try:
        project_id = await conn.fetchval("SELECT id FROM projects.projects WHERE key = $1", key)
        began = time.perf_counter()
        await conn.copy_from_query(
            "SELECT key, id, project_id, type, status, status_category, priority, title, "
            "description, resolution, reporter_id, assignee_id, labels, due_date, "
            "milestone_id, parent_id, created_at, updated_at, version, fields "
            "FROM tickets.tickets WHERE project_id = $1 AND deleted_at IS NULL "
            "ORDER BY updated_at DESC, id DESC",
            project_id,
            output=count,
            format="csv",
        )
        return Export("COPY to CSV (database alone)", rows, time.perf_counter() - began, 0, {})
    finally:
        await conn.close()


def table(rows: list[Timing]) -> list[str]:
    lines = ["| query | p50 ms | p99 ms | max ms | first page |", "|---|---|---|---|---|"]
    for t in rows:
        lines.append(
            f"| {t.name}: `{t.query or '(none)'}` | {t.p50:.1f} | {t.p99:.1f} | "
            f"{t.worst:.1f} | {t.found} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", default="SEED")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--label", default="queries")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--only-export", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    env = Environment.load(REPO / ".data")
    with httpx.Client(base_url=env.url("gateway"), timeout=30) as client:
        login = client.post(
            "/api/v1/auth/login",
            json={"email": env.admin_email, "password": env.admin_password},
        )
        login.raise_for_status()
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        path = f"/api/v1/projects/{args.project}/tickets"
        total = client.get(path, params={"limit": 1, "include_total": "true"}).json()["total"]
        print(f"project {args.project}: {total:,} tickets", flush=True)
        baseline = timed(client, path, {"limit": LIMIT}, args.runs)
        baseline.name = "baseline: the list without query"
        singles = []
        for name, query in [] if args.only_export else single_terms(args.project):
            timing = timed(client, path, {"limit": LIMIT, "query": query}, args.runs)
            timing.name = name
            singles.append(timing)
            print(f"  {name:24} p50 {timing.p50:7.1f}  p99 {timing.p99:7.1f}", flush=True)
        combos = []
        for name, query in [] if args.only_export else combinations():
            timing = timed(client, path, {"limit": LIMIT, "query": query}, args.runs)
            timing.name = name
            combos.append(timing)
            print(f"  {name:24} p50 {timing.p50:7.1f}  p99 {timing.p99:7.1f}", flush=True)
        exports: list[Export] = []
        if not args.no_export:
            found = listeners({"tickets": env.ports["tickets"], "gateway": env.ports["gateway"]})
            pids = {name: process.pid for name, process in found.items()}
            exports.append(asyncio.run(database_copy(env, args.project)))
            for accept in ("text/csv", "application/x-ndjson"):
                exports.append(export(client, path, accept, pids))
                print(f"  export {accept}: {exports[-1].rate:,.0f} rows/s", flush=True)
    lines = [
        f"# Ticket queries and exports — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}; project "
        f"{args.project} with {total:,} tickets; {args.runs} sequential requests per row "
        f"after 3 warm-ups, first page of {LIMIT}, through the gateway.",
        "",
        "## Baseline and every term alone",
        "",
        *table([baseline, *singles]),
        "",
        "## The five most common combinations",
        "",
        *table(combos),
    ]
    if exports:
        lines += [
            "",
            "## Export of the whole project",
            "",
            "| export | rows | seconds | rows/s | first byte ms | peak growth tickets MB "
            "| peak growth gateway MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in exports:
            grown = {name: f"{kb / 1024:.1f}" for name, kb in e.growth_kb.items()}
            lines.append(
                f"| {e.name} | {e.rows:,} | {e.seconds:.1f} | {e.rate:,.0f} | "
                f"{e.first_byte_ms:.0f} | {grown.get('tickets', '-')} | "
                f"{grown.get('gateway', '-')} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{args.label}.md"
        out.write_text(text)
        print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
