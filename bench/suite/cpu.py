"""CPU time of each process of the system under test, found by the port it listens on.

A process's CPU is its own time, the time of its children that have exited (reaped), and
the time of its live descendants: so PostgreSQL counts the postmaster and every backend,
even those that came and went during the run, and RabbitMQ counts beam.smp and its
helpers. CPU % = CPU seconds / wall seconds x 100 (up to 100 x cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass

import psutil


def listeners(ports: dict[str, int]) -> dict[str, psutil.Process]:
    """The topmost process listening on each port (uvicorn's parent when it has workers)."""
    by_port = {port: name for name, port in ports.items()}
    pids: dict[str, set[int]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid and conn.laddr.port in by_port:
            pids.setdefault(by_port[conn.laddr.port], set()).add(conn.pid)
    found: dict[str, psutil.Process] = {}
    for name, group in pids.items():
        for pid in group:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.ppid() not in group:
                    found[name] = process
    return found


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    return total


def reaped_children_seconds() -> float:
    """CPU of this process's children that have exited (wrk, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy, all cores (guest time is inside user)."""
    times = psutil.cpu_times()
    return float(
        times.user
        + times.nice
        + times.system
        + getattr(times, "irq", 0.0)
        + getattr(times, "softirq", 0.0)
        + getattr(times, "steal", 0.0)
    )


def own_seconds() -> float:
    return time.process_time()


@dataclass
class CpuMeter:
    processes: dict[str, psutil.Process]

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(process) for name, process in self.processes.items()}

    @staticmethod
    def percent(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
        return {
            name: 100 * (after[name] - before.get(name, 0.0)) / wall for name in after if wall > 0
        }

    async def busy(self, seconds: float = 1.0) -> float:
        """The processes' CPU % together over the next `seconds`."""
        before = self.snapshot()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        return sum(self.percent(before, self.snapshot(), time.monotonic() - started).values())
