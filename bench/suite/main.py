"""`make bench`: check the running system, set up the data, run the scenarios, report."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from suite.api import Api, gateway_is_up
from suite.baseline import Baseline, running_baseline
from suite.config import RESULTS_DIR, Environment, Options, parse_options
from suite.cpu import CpuMeter, listeners
from suite.facts import machine_facts, postgres_facts, process_facts
from suite.fixtures import Fixture, prepare
from suite.notify import NotifyResult, measure
from suite.report import Report
from suite.runner import RunResult, run_scenario, settle
from suite.scenarios import BASELINE, GROUPS, SCENARIOS, Context, Scenario

SYSTEM = ("gateway", "auth", "projects", "tickets", "notifications", "postgres", "rabbitmq")
NEEDED_PER_MINUTE = 100_000  # per user: 4 users at ~3,000 req/s together need ~45,000
RAISE_LIMITS = (
    "BUGTRACKER_GATEWAY_RATE_LIMIT=1000000/minute "
    "BUGTRACKER_GATEWAY_AUTH_RATE_LIMIT=1000/minute make up"
)


def select(options: Options) -> list[Scenario]:
    chosen = [
        scenario
        for scenario in SCENARIOS
        if not options.scenarios
        or any(fnmatch.fnmatchcase(scenario.name, pattern) for pattern in options.scenarios)
    ]
    if not options.scale:
        chosen = [scenario for scenario in chosen if not scenario.needs_scale]
    if not chosen:
        raise SystemExit(f"bench: no scenario matches {', '.join(options.scenarios)}")
    return chosen


async def check_rate_limit(api: Api, options: Options) -> str:
    """The gateway's policy; stop when it would refuse most of the benchmark's requests.
    (The JWKS is public, and limited by the same policy per client IP as users are.)"""
    headers = await api.headers("/api/v1/auth/jwks.json")
    policy = headers.get("ratelimit-policy", "")
    match = re.search(r"q=(\d+);w=(\d+)", policy)
    if not match:
        return "none (no RateLimit-Policy header)"
    per_minute = int(match[1]) * 60 / max(1, int(match[2]))
    if per_minute < NEEDED_PER_MINUTE and not options.allow_rate_limit:
        raise SystemExit(
            f"bench: the gateway's rate limit ({policy}: {per_minute:,.0f} requests per minute "
            "per user) would answer most benchmark requests with 429 rate_limited.\n"
            "Restart `make up` with the limits raised (the limiter still runs, it just never "
            f"refuses):\n\n    {RAISE_LIMITS}\n\n"
            "or put those two variables in .env. To measure the limiter refusing instead, "
            "run with --allow-rate-limit."
        )
    return policy


def results_path(label: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")
    stem = datetime.now(UTC).strftime("%Y-%m-%d") + (f"-{safe}" if safe else "")
    path, n = RESULTS_DIR / f"{stem}.md", 2
    while path.exists():  # never overwrite a kept result (before / after ...)
        path, n = RESULTS_DIR / f"{stem}-{n}.md", n + 1
    return path


def _settings(options: Options, fixture: Fixture, policy: str, chosen: list[Scenario]) -> list[str]:
    scale = (
        f"{fixture.scale.key}: {fixture.scale.tickets:,} tickets"
        if fixture.scale
        else "not run (BENCH_SCALE=0 or not selected)"
    )
    lines = [
        f"{options.seconds:g} s measured per run after {options.warmup:g} s of warm-up; "
        f"concurrency {', '.join(map(str, options.concurrency))} "
        "(wrk -c N -t min(N, 2), keep-alive, 10 s timeout); traffic only to 127.0.0.1",
        f"{len(fixture.users)} users, their tokens rotating per request; BENCH: "
        f"{fixture.bench.tickets:,} tickets; BENCHW (the creates): {fixture.writes.tickets:,} "
        f"tickets at the start; scale project {scale}",
        f"Gateway rate limit policy: {policy}",
        f"Before each run the system's processes settle under {options.settle_cpu_percent:g} % "
        "CPU together",
        f"Command: bench/run.py {' '.join(options.argv)}".rstrip(),
    ]
    if options.scenarios:
        lines.append(f"Scenarios: {', '.join(s.name for s in chosen)}")
    if options.profile:
        lines.append(f"py-spy recorded {options.profile} during each run (adds a little load)")
    return lines


def _progress(run: RunResult) -> None:
    errors = f"  errors {run.errors}" if run.errors else ""
    print(
        f"  {run.scenario.name:<18} c={run.concurrency:<3} {run.rps:>8,.0f} req/s  "
        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms{errors}",
        flush=True,
    )
    for note in run.notes:
        print(f"    note: {note}", flush=True)


@contextlib.asynccontextmanager
async def _maybe_baseline(env: Environment, wanted: bool) -> AsyncIterator[Baseline | None]:
    if not wanted:
        yield None
        return
    async with running_baseline(env) as baseline:
        yield baseline


async def _run_all(
    ctx: Context, meter: CpuMeter, chosen: list[Scenario]
) -> tuple[list[RunResult], NotifyResult | None]:
    runs: list[RunResult] = []
    notify: NotifyResult | None = None
    for group in GROUPS:
        scenarios = [scenario for scenario in chosen if scenario.group == group]
        if not scenarios:
            continue
        print(f"\n{group}", flush=True)
        async with _maybe_baseline(ctx.env, group == BASELINE) as baseline:
            ctx.baseline = baseline
            if baseline is not None:
                meter.processes["baseline"] = baseline.process
            for scenario in scenarios:
                if scenario.build is None:
                    await settle(meter, ctx.options)
                    await ctx.fixture.fresh_tokens(ctx.api, ctx.options.notify_seconds + 240)
                    notify = await measure(ctx, meter, lambda: settle(meter, ctx.options))
                    print(
                        f"  {scenario.name:<18} {notify.achieved:.0f}/s  assign -> visible "
                        f"p50 {notify.total.p50_ms:.1f} ms  p99 {notify.total.p99_ms:.1f} ms  "
                        f"missing {notify.missing}",
                        flush=True,
                    )
                    continue
                for concurrency in scenario.levels(ctx.options.concurrency):
                    run = await run_scenario(ctx, meter, scenario, concurrency)
                    runs.append(run)
                    _progress(run)
            meter.processes.pop("baseline", None)
    return runs, notify


async def run(options: Options) -> int:
    if options.list_scenarios:
        for scenario in SCENARIOS:
            print(f"{scenario.name:<18} {scenario.what}")
        return 0
    chosen = select(options)
    env = Environment.load(options.data_dir)
    gateway = env.url("gateway")
    async with aiohttp.ClientSession() as session:
        problem = await gateway_is_up(session, gateway)
        if problem:
            raise SystemExit(
                f"bench: the gateway at {gateway} is not up ({problem}).\n"
                f"Start the system in another terminal first:\n\n    {RAISE_LIMITS}\n\n"
                "and run `make bench` when it prints `Bugtracker is up`."
            )
        api = Api(session, gateway)
        policy = await check_rate_limit(api, options)
        print("setting up users, projects and tickets (idempotent)...", flush=True)
        fixture = await prepare(api, env, options, scale=any(s.needs_scale for s in chosen))
        found = listeners({name: env.ports[name] for name in SYSTEM})
        meter = CpuMeter({name: found[name] for name in SYSTEM if name in found})
        absent = [name for name in SYSTEM if name not in meter.processes]
        if absent:
            print(f"  note: no listening process found for {', '.join(absent)}; no CPU for them")
        facts = [
            *machine_facts(),
            await postgres_facts(env),
            f"Processes: {process_facts(meter.processes)}",
        ]
        ctx = Context(env=env, options=options, api=api, fixture=fixture)
        runs, notify = await _run_all(ctx, meter, chosen)
    label = f" ({options.label})" if options.label else ""
    report = Report(
        title=f"Benchmark results {datetime.now(UTC):%Y-%m-%d}{label}",
        facts=facts,
        settings=_settings(options, fixture, policy, chosen),
        runs=runs,
        notify=notify,
    )
    text = report.markdown()
    print("\n" + text)
    if options.save:
        path = results_path(options.label)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.rstrip("\n") + "\n")
        print(f"\nwritten to {path.relative_to(RESULTS_DIR.parents[1])}")
    return 0


def main(argv: list[str]) -> int:
    return asyncio.run(run(parse_options(argv)))
