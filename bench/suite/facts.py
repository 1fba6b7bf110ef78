"""Facts about the machine and the system under test, for the results file's header."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from suite.config import REPO_ROOT, Environment
from suite.wrk import wrk_binary

PG_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "effective_cache_size",
    "max_connections",
    "synchronous_commit",
    "fsync",
    "random_page_cost",
    "jit",
)


def _run(*command: str) -> str:
    try:
        result = subprocess.run(  # noqa: S603 (fixed commands)
            command, capture_output=True, text=True, check=False, cwd=REPO_ROOT
        )
    except OSError:
        return ""
    return (result.stdout or result.stderr).strip()


def commit() -> str:
    head = _run("git", "rev-parse", "--short", "HEAD") or "unknown"
    dirty = _run("git", "status", "--porcelain", "--untracked-files=no")
    return f"{head} (with uncommitted changes)" if dirty else head


def _cpu_model() -> str:
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _os_name() -> str:
    path = Path("/etc/os-release")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


async def postgres_facts(env: Environment) -> str:
    conn = await asyncpg.connect(env.superuser_dsn())
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = [f"{name}={await conn.fetchval(f'SHOW {name}')}" for name in PG_SETTINGS]
    finally:
        await conn.close()
    return f"PostgreSQL {version} ({', '.join(settings)})"


def machine_facts() -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    rabbit = _run("dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server")
    wrk = _run(wrk_binary(), "-v").splitlines()[0].split(" Copyright")[0]
    return [
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Commit: {commit()}",
        f"Machine: {os.cpu_count()} cores ({_cpu_model()}), {memory:.0f} GiB RAM, "
        f"{_os_name()}, Linux {platform.release()}",
        f"Load average at start (1, 5, 15 min): {load}",
        f"Python {platform.python_version()}, RabbitMQ {rabbit or '?'}, {wrk}",
    ]


def process_facts(processes: dict[str, psutil.Process]) -> str:
    """Each measured process and how many OS processes it has (uvicorn workers...)."""
    parts = []
    for name, process in processes.items():
        try:
            count = 1 + len(process.children(recursive=True))
        except psutil.Error:
            count = 0
        parts.append(f"{name} pid {process.pid} ({count} process{'es' if count != 1 else ''})")
    return "; ".join(parts)
