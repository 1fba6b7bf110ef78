"""The results as markdown: one table per group, then the comparisons and the targets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from suite.notify import NotifyResult, Percentiles
from suite.runner import RunResult
from suite.scenarios import DIRECT_PAIRS, GROUPS, SCALE_PAIRS

CPU_COLUMNS = {
    "gateway": "gw",
    "auth": "auth",
    "projects": "proj",
    "tickets": "tick",
    "notifications": "notif",
    "postgres": "pg",
    "rabbitmq": "mq",
    "baseline": "base",
    "load": "load",
    "other": "other",
}
# Issue 17's targets, at c=50 through the gateway: a rate, and a share of the bare
# baseline's rate for the same statement measured in the same run.
TARGET_CONCURRENCY = 50
CREATE_RPS, CREATE_P99_MS, CREATE_SHARE = 700, 150, 0.30
LIST_RPS, LIST_SHARE = 600, 0.50
GET_RPS, GET_SHARE = 1000, 0.50
SCALE_LIST_RATIO = 1.5
SCALE_SEARCH_P99_MS = 200
NOTIFY_P99_MS = 50
# Issue 20's targets: the planning reads on the scale project under PLANNING_P99_MS p99,
# the milestone (its progress) under PROGRESS_MS, and a bulk change of 100 tickets under
# BULK_MS per request.
PLANNING_P99_MS = 100
PROGRESS_MS = 5
BULK_MS = 1000
PLANNING_READS = (
    "scale-milestone",
    "scale-milestone-list",
    "scale-no-milestone",
    "scale-parent",
    "scale-blocked",
    "scale-children",
)


@dataclass(frozen=True)
class Report:
    title: str
    facts: Sequence[str]
    settings: Sequence[str]
    runs: Sequence[RunResult]
    notify: NotifyResult | None

    def markdown(self) -> str:
        parts = [f"# {self.title}", "", *(f"- {fact}" for fact in self.facts), ""]
        parts += ["Settings:", "", *(f"- {line}" for line in self.settings), ""]
        parts += [
            "CPU columns: % of one core (cpu seconds / wall seconds x 100, so up to 200 on two "
            "cores) of gw = gateway, auth, proj = projects, tick = tickets, notif = "
            "notifications, pg = PostgreSQL (all backends), mq = RabbitMQ, base = the baseline "
            "app, load = the load generator (wrk, or the Python driver for notify), other = "
            "everything else on the machine. Latencies are wrk's, per request, in ms.",
            "",
        ]
        for group in GROUPS:
            runs = [run for run in self.runs if run.scenario.group == group]
            if runs:
                parts += [f"## {group}", "", *_runs_table(runs), ""]
        if self.notify is not None:
            parts += ["## Assign -> notification visible", "", *_notify_section(self.notify), ""]
        cost = _gateway_cost(self.runs)
        if cost:
            parts += ["## The gateway's cost (same requests, direct on :8003)", "", *cost, ""]
        scale = _scale_table(self.runs)
        if scale:
            parts += ["## 10k vs 1M tickets", "", *scale, ""]
        targets = _targets(self.runs, self.notify)
        if targets:
            parts += ["## Targets (issue 17, c=50, through the gateway)", "", *targets, ""]
        planning = _planning_targets(self.runs)
        if planning:
            parts += ["## Targets (issue 20, planning and bulk, through the gateway)", ""]
            parts += [*planning, ""]
        return "\n".join(parts)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"  # noqa: PLR2004


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _errors(run: RunResult) -> str:
    if not run.errors:
        return "0"
    detail = ", ".join(f"{name}: {n}" for name, n in run.errors.items())
    return f"{run.error_count} ({detail})"


def _cpu_columns(runs: Sequence[RunResult]) -> list[str]:
    present = {name for run in runs for name in run.cpu}
    return [name for name in CPU_COLUMNS if name in present]


def _runs_table(runs: Sequence[RunResult]) -> list[str]:
    columns = _cpu_columns(runs)
    header = ["scenario", "c", "req/s", "p50 ms", "p99 ms", "errors"]
    header += [f"{CPU_COLUMNS[name]} %" for name in columns]
    rows = []
    for run in runs:
        row = [run.scenario.name, str(run.concurrency), f"{run.rps:,.0f}"]
        row += [_ms(run.p50_ms), _ms(run.p99_ms), _errors(run)]
        row += [f"{run.cpu[name]:.0f}" if name in run.cpu else "-" for name in columns]
        rows.append(row)
    lines = _table(header, rows)
    described = {run.scenario.name: run.scenario.what for run in runs}
    lines += ["", *(f"- `{name}`: {what}" for name, what in described.items())]
    notes = [
        f"- note, {run.scenario.name} c={run.concurrency}: {'; '.join(run.notes)}"
        for run in runs
        if run.notes
    ]
    return lines + notes


def _percentile_row(name: str, values: Percentiles) -> list[str]:
    return [name, str(values.count), _ms(values.p50_ms), _ms(values.p99_ms), _ms(values.max_ms)]


def _notify_section(result: NotifyResult) -> list[str]:
    lines = _table(
        ["measure", "n", "p50 ms", "p99 ms", "max ms"],
        [
            _percentile_row("PUT .../assignee answered", result.request),
            _percentile_row("answer -> notification on the SSE stream", result.visible),
            _percentile_row("PUT sent -> notification on the SSE stream", result.total),
        ],
    )
    failed = ", ".join(f"{status}: {n}" for status, n in result.failed.items()) or "none"
    cpu = ", ".join(
        f"{CPU_COLUMNS.get(name, name)} {value:.0f}" for name, value in result.cpu.items()
    )
    lines += [
        "",
        f"Asked {result.rate:.0f} assignments/s, sent {result.achieved:.1f}/s "
        f"({result.sent} in all), answered {result.answered:.1f}/s; failed answers: {failed}; "
        f"notifications not seen within 10 s: {result.missing}. Earlier events drained in "
        f"{result.drain_seconds:.2f} s before the measurement.",
        "",
        f"CPU % during the run: {cpu}.",
    ]
    if result.answered < 0.95 * result.rate:
        lines += [
            "",
            "The system answered fewer assignments per second than were sent: requests "
            "queued, so these latencies mostly measure the queue, not the event path.",
        ]
    return lines


def _find(runs: Sequence[RunResult], name: str, concurrency: int) -> RunResult | None:
    for run in runs:
        if run.scenario.name == name and run.concurrency == concurrency:
            return run
    return None


def _gateway_cost(runs: Sequence[RunResult]) -> list[str]:
    rows = []
    for direct_name, gateway_name in DIRECT_PAIRS.items():
        for direct in (run for run in runs if run.scenario.name == direct_name):
            gateway = _find(runs, gateway_name, direct.concurrency)
            if gateway is None:
                continue
            share = 100 * gateway.rps / direct.rps if direct.rps else float("nan")
            rows.append(
                [
                    gateway_name,
                    str(direct.concurrency),
                    f"{gateway.rps:,.0f}",
                    f"{direct.rps:,.0f}",
                    f"{share:.0f} %",
                    _ms(gateway.p50_ms),
                    _ms(direct.p50_ms),
                    _ms(gateway.p99_ms),
                    _ms(direct.p99_ms),
                ]
            )
    if not rows:
        return []
    header = ["scenario", "c", "req/s via gw", "req/s direct", "gw/direct"]
    header += ["p50 via gw", "p50 direct", "p99 via gw", "p99 direct"]
    return _table(header, rows)


def _ratio(big: float, small: float) -> str:
    ratio = big / small if small > 0 else math.nan
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def _scale_table(runs: Sequence[RunResult]) -> list[str]:
    rows = []
    for scale_name, small_name in SCALE_PAIRS.items():
        for big in (run for run in runs if run.scenario.name == scale_name):
            small = _find(runs, small_name, big.concurrency)
            if small is None:
                continue
            rows.append(
                [
                    small_name,
                    str(big.concurrency),
                    _ms(small.p50_ms),
                    _ms(big.p50_ms),
                    _ratio(big.p50_ms, small.p50_ms),
                    _ms(small.p99_ms),
                    _ms(big.p99_ms),
                    _ratio(big.p99_ms, small.p99_ms),
                    f"{small.rps:,.0f} / {big.rps:,.0f}",
                ]
            )
    if not rows:
        return []
    header = ["scenario", "c", "p50 10k", "p50 1M", "p50 x", "p99 10k", "p99 1M", "p99 x"]
    return _table([*header, "req/s 10k / 1M"], rows)


def _busiest(cpu: dict[str, float]) -> str:
    named = sorted(((v, k) for k, v in cpu.items() if k != "other"), reverse=True)[:2]
    return ", ".join(f"{CPU_COLUMNS.get(name, name)} {value:.0f} %" for value, name in named)


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def _share(run: RunResult, bare: RunResult | None, share: float) -> tuple[str, bool]:
    """The run's rate as a share of the bare baseline's (met when no baseline ran)."""
    if bare is None or not bare.rps:
        return "", True
    return f", {run.rps / bare.rps:.0%} of bare {bare.rps:,.0f}", run.rps >= share * bare.rps


def _rps_target(
    run: RunResult | None, bare: RunResult | None, target: str, rps: float, share: float
) -> list[str] | None:
    if run is None:
        return None
    of_bare, share_met = _share(run, bare, share)
    met = run.rps >= rps and share_met and not run.error_count
    measured = f"{run.rps:,.0f} req/s{of_bare}"
    return [f"{target} and >= {share:.0%} of bare", measured, _verdict(met), _busiest(run.cpu)]


def _targets(runs: Sequence[RunResult], notify: NotifyResult | None) -> list[str]:
    c = TARGET_CONCURRENCY
    rows = [
        _rps_target(
            _find(runs, "list", c),
            _find(runs, "baseline-list", c),
            f"list 25 of 10k >= {LIST_RPS:,} req/s",
            LIST_RPS,
            LIST_SHARE,
        ),
        _rps_target(
            _find(runs, "get", c),
            _find(runs, "baseline-get", c),
            f"get one >= {GET_RPS:,} req/s",
            GET_RPS,
            GET_SHARE,
        ),
    ]
    create = _find(runs, "create", c)
    if create:
        of_bare, share_met = _share(create, _find(runs, "baseline-insert", c), CREATE_SHARE)
        met = (
            create.rps >= CREATE_RPS
            and create.p99_ms <= CREATE_P99_MS
            and share_met
            and not create.errors
        )
        rows.insert(
            0,
            [
                f"create >= {CREATE_RPS:,} req/s and >= {CREATE_SHARE:.0%} of bare insert, "
                f"p99 <= {CREATE_P99_MS} ms",
                f"{create.rps:,.0f} req/s{of_bare}, p99 {_ms(create.p99_ms)} ms",
                _verdict(met),
                _busiest(create.cpu),
            ],
        )
    small, big = _find(runs, "list", c), _find(runs, "scale-list", c)
    if small and big:
        ratio = big.p50_ms / small.p50_ms if small.p50_ms else math.nan
        rows.append(
            [
                f"list p50 at 1M <= {SCALE_LIST_RATIO}x at 10k",
                f"{_ms(big.p50_ms)} vs {_ms(small.p50_ms)} ms ({_ratio(big.p50_ms, small.p50_ms)})",
                _verdict(ratio <= SCALE_LIST_RATIO),
                _busiest(big.cpu),
            ]
        )
    search = _find(runs, "scale-search", c)
    if search:
        met = search.p99_ms <= SCALE_SEARCH_P99_MS and not search.errors
        measured = f"p99 {_ms(search.p99_ms)} ms, {search.rps:,.0f} req/s"
        target = f"search p99 at 1M <= {SCALE_SEARCH_P99_MS} ms"
        rows.append([target, measured, _verdict(met), _busiest(search.cpu)])
    if notify:
        met = notify.total.p99_ms <= NOTIFY_P99_MS and not notify.missing and not notify.failed
        rows.append(
            [
                f"assign -> notification p99 <= {NOTIFY_P99_MS} ms at {notify.rate:.0f}/s",
                f"p99 {_ms(notify.total.p99_ms)} ms at {notify.achieved:.0f}/s",
                _verdict(met),
                _busiest(notify.cpu),
            ]
        )
    kept = [row for row in rows if row is not None]
    if not kept:
        return []
    return _table(["target", "measured", "met", "busiest processes in that run"], kept)


def _planning_targets(runs: Sequence[RunResult]) -> list[str]:
    """Issue 20: per run (every concurrency), so the one-row progress read shows at c=1."""
    rows = []
    for run in runs:
        name = run.scenario.name
        if name in PLANNING_READS:
            target = f"{name} p99 <= {PLANNING_P99_MS} ms"
            met = run.p99_ms <= PLANNING_P99_MS
            if name == "scale-milestone" and run.concurrency == 1:
                target = f"milestone progress p50 <= {PROGRESS_MS} ms (c=1, one row)"
                met = run.p50_ms <= PROGRESS_MS
        elif name == "bulk":
            target = f"bulk change of 100 tickets p99 <= {BULK_MS} ms"
            met = run.p99_ms <= BULK_MS
        else:
            continue
        measured = f"p50 {_ms(run.p50_ms)} ms, p99 {_ms(run.p99_ms)} ms, {run.rps:,.0f} req/s"
        rows.append(
            [
                target,
                str(run.concurrency),
                measured,
                _verdict(met and not run.error_count),
                _busiest(run.cpu),
            ]
        )
    if not rows:
        return []
    return _table(["target", "c", "measured", "met", "busiest processes in that run"], rows)
