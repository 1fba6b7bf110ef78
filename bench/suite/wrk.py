"""Runs wrk with bench/lua/load.lua and reads the JSON summary the script prints."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TypedDict, cast

from suite.config import LUA_SCRIPT
from suite.cpu import reaped_children_seconds

MAX_THREADS = 2  # one per core of this machine; more threads only add switching
TIMEOUT_SECONDS = 10  # the gateway's backend timeout: a slower answer is an error anyway


@dataclass
class Plan:
    """What load.lua sends: requests rotate over paths and tokens (see the script)."""

    base_url: str
    method: str = "GET"
    paths: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    body: str | None = None  # a format with one %d, a number unique per request
    # Items instead of paths: each request sends the next item of the thread's share to
    # its path, with `item_body` ($VALUE: values[start + visit], $PAYLOAD: the item's
    # payload), so every visit of an item sends the next value (see load.lua).
    values: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    item_body: str = ""

    def lines(self) -> list[str]:
        lines = [f"method\t{self.method}"]
        if self.body is not None:
            lines.append(f"body\t{self.body}")
        if self.item_body:
            lines.append(f"itembody\t{self.item_body}")
        lines += [f"token\t{token}" for token in self.tokens]
        lines += [f"path\t{path}" for path in self.paths]
        lines += [f"value\t{value}" for value in self.values]
        lines += [f"item\t{item.path}\t{item.start}\t{item.payload}" for item in self.items]
        return lines


@dataclass(frozen=True)
class Item:
    """One target of an item plan: `path`, the first value's index and the payload."""

    path: str
    start: int
    payload: str = ""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]  # non-2xx responses by status
    socket_errors: dict[str, int]  # connect, read, write, timeout
    cpu_seconds: float  # wrk's own CPU

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + sum(self.socket_errors.values())


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench: wrk is not installed; `make bench` installs it (apt wrk)")
    return found


class _Latency(TypedDict):
    p50: float
    p90: float
    p99: float
    max: float
    mean: float


class _Errors(TypedDict):
    connect: int
    read: int
    write: int
    status: int
    timeout: int


class _Summary(TypedDict):
    """What done() in load.lua prints (microseconds)."""

    requests: int
    duration_us: int
    bytes: int
    latency_us: _Latency
    errors: _Errors
    statuses: dict[str, int]


def _parse(stdout: str, stderr: str) -> _Summary:
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return cast(_Summary, json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"wrk printed no summary:\n{stdout}\n{stderr}")


async def run_wrk(plan: Plan, connections: int, seconds: float) -> WrkResult:
    threads = min(connections, MAX_THREADS)
    with tempfile.NamedTemporaryFile("w", prefix="bench-", suffix=".plan") as plan_file:
        plan_file.write("\n".join(plan.lines()) + "\n")
        plan_file.flush()
        command = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={TIMEOUT_SECONDS}s",
            f"--script={LUA_SCRIPT}",
            plan.base_url,
            "--",
            plan_file.name,
            str(threads),
        ]
        before = reaped_children_seconds()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        cpu = reaped_children_seconds() - before  # wrk has been waited for by now
    summary = _parse(out.decode(), err.decode())
    latency, errors = summary["latency_us"], summary["errors"]
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(status): n for status, n in summary["statuses"].items()},
        socket_errors={
            "connect": errors["connect"],
            "read": errors["read"],
            "write": errors["write"],
            "timeout": errors["timeout"],
        },
        cpu_seconds=cpu,
    )
