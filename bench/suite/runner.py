"""One measured run: settle, warm up, then wrk for the measured seconds with the CPU of
every process sampled around it (and py-spy recording one process when asked)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from suite.config import PROFILES_DIR, Options
from suite.cpu import CpuMeter, machine_busy_seconds
from suite.scenarios import Context, Scenario
from suite.wrk import run_wrk

SETTLE_TIMEOUT_SECONDS = 60.0
TOKEN_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class RunResult:
    scenario: Scenario
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]  # "429", "500", "timeout", ...
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU %
    notes: tuple[str, ...] = ()

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def settle(meter: CpuMeter, options: Options) -> float:
    """Wait until the system is quiet (outbox relays and consumers done with the previous
    run's events, autovacuum...): the processes together under `--settle-cpu` %."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_TIMEOUT_SECONDS:
        if await meter.busy(0.5) < options.settle_cpu_percent:
            break
    return time.monotonic() - started


def _py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def start_profile(
    options: Options, meter: CpuMeter, scenario: Scenario, concurrency: int
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy record on the chosen process for the measured seconds (not waited for here,
    so its CPU is not counted as the load generator's)."""
    if not options.profile:
        return None
    target = _profiled_process(options.profile, meter)
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    suffix = "svg" if options.profile_format == "flamegraph" else "speedscope.json"
    output = PROFILES_DIR / f"{stamp}-{scenario.name}-c{concurrency}-{options.profile}.{suffix}"
    command = [
        _py_spy(),
        "record",
        "--pid",
        str(target.pid),
        "--subprocesses",
        "--nonblocking",
        "--rate",
        "100",
        "--duration",
        str(max(1, round(options.seconds))),
        "--format",
        options.profile_format,
        "--output",
        str(output),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL), output  # noqa: S603


def _profiled_process(target: str, meter: CpuMeter) -> psutil.Process:
    if target in meter.processes:
        return meter.processes[target]
    if target.isdigit():
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == int(target) and conn.pid:
                return psutil.Process(conn.pid)
    raise SystemExit(f"bench: nothing to profile: no process {target!r} (name or port)")


async def run_scenario(
    ctx: Context, meter: CpuMeter, scenario: Scenario, concurrency: int
) -> RunResult:
    options = ctx.options
    if scenario.build is None:
        raise ValueError(f"{scenario.name} is not a wrk scenario")
    notes: list[str] = []
    waited = await settle(meter, options)
    if waited >= SETTLE_TIMEOUT_SECONDS:
        notes.append(f"system still busy after {waited:.0f} s")
    run_seconds = options.warmup + options.seconds + TOKEN_MARGIN_SECONDS
    await ctx.fixture.fresh_tokens(ctx.api, run_seconds)
    if options.warmup > 0:
        await run_wrk(await scenario.build(ctx, scenario.via), concurrency, options.warmup)
    plan = await scenario.build(ctx, scenario.via)  # again: assign reads the assignees anew
    profile = start_profile(options, meter, scenario, concurrency)
    before, machine_before = meter.snapshot(), machine_busy_seconds()
    started = time.monotonic()
    result = await run_wrk(plan, concurrency, options.seconds)
    wall = time.monotonic() - started
    cpu = meter.percent(before, meter.snapshot(), wall)
    cpu["load"] = 100 * result.cpu_seconds / wall
    machine = 100 * (machine_busy_seconds() - machine_before) / wall
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    if profile is not None:
        process, output = profile
        await asyncio.to_thread(process.wait, 30)
        notes.append(f"py-spy: {output.name}")
    if result.requests < concurrency:
        answers = f"only {result.requests} answers" if result.requests else "no answer"
        notes.append(
            f"{answers} in {options.seconds:g} s: requests still open at the end are not "
            "counted, so the latency shown is too low"
        )
    errors = {str(status): n for status, n in sorted(result.statuses.items())}
    errors |= {name: n for name, n in result.socket_errors.items() if n}
    return RunResult(
        scenario=scenario,
        concurrency=concurrency,
        requests=result.requests,
        rps=result.rps,
        p50_ms=result.p50_ms if result.requests else math.nan,
        p99_ms=result.p99_ms if result.requests else math.nan,
        errors=errors,
        cpu=cpu,
        notes=tuple(notes),
    )
