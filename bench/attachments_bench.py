"""Attachment throughput and memory against a running `make up` (issue 22).

    uv run python bench/attachments_bench.py [--rounds 5] [--parallel 10]

Uploads and downloads 1 MiB and 25 MiB files with `curl` through the gateway, one at a
time and `--parallel` at once, next to `curl` against the storage directly (the bytes
copied into and read out of the attachments directory with `file://` URLs: the floor
the service adds to). While each row runs, the resident memory (RSS) of the gateway and
the tickets processes is sampled every 20 ms; the table shows their peak above what they
held before the row. It measures, it does not assert; results are written under
bench/results/ like bench/run.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

GATEWAY = "http://127.0.0.1:8000"
API = f"{GATEWAY}/api/v1"
MIB = 1024 * 1024
PASSWORD = "plum-lantern-harbour-42-violet"  # noqa: S105 (a throw-away bench account)
REPO = Path(__file__).resolve().parents[1]


def processes(module: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(module in part for part in cmdline) and "uvicorn" in " ".join(cmdline):
            found.append(process)
    return found


class PeakRss:
    """The peak RSS of some processes above their RSS at the start, sampled every 20 ms."""

    def __init__(self, watched: list[psutil.Process]) -> None:
        self._watched = watched
        self._start = self._rss()
        self._peak = self._start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        return sum(p.memory_info().rss for p in self._watched)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self._peak - self._start) / MIB


@dataclass
class Row:
    what: str
    size_mib: int
    parallel: int
    seconds: list[float]
    gateway_mib: float
    tickets_mib: float

    def line(self) -> str:
        total = self.size_mib * self.parallel * len(self.seconds)
        elapsed = sum(self.seconds)
        return (
            f"| {self.what} | {self.size_mib} | {self.parallel} | "
            f"{statistics.median(self.seconds) * 1000:.0f} | {total / elapsed:.0f} | "
            f"{self.gateway_mib:.1f} | {self.tickets_mib:.1f} |"
        )


def run_parallel(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    children = [
        subprocess.Popen(["curl", "-sS", "--fail", "-o", "/dev/null", *c])  # noqa: S603, S607 (curl on PATH, our arguments)
        for c in commands
    ]
    for child in children:
        if child.wait() != 0:
            raise RuntimeError(f"curl failed: {child.args}")
    return time.perf_counter() - started


async def setup(client: httpx.AsyncClient) -> tuple[str, str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    await client.post(
        f"{API}/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Bench"},
    )
    login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    token = login.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    key = f"AT{secrets.randbelow(10**6)}"
    (
        await client.post(f"{API}/projects", json={"key": key, "name": "Bench"}, headers=headers)
    ).raise_for_status()
    ticket = await client.post(
        f"{API}/projects/{key}/tickets", json={"title": "files"}, headers=headers
    )
    ticket.raise_for_status()
    return token, ticket.json()["id"]


def measure(what: str, size: int, parallel: int, rounds: int, commands: list[list[str]]) -> Row:
    gateway, tickets = processes("bugtracker_gateway"), processes("bugtracker_tickets")
    seconds = []
    with PeakRss(gateway) as gw, PeakRss(tickets) as tk:
        for _ in range(rounds):
            seconds.append(run_parallel(commands))
    return Row(what, size, parallel, seconds, gw.growth_mib, tk.growth_mib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--label", default="attachments")
    args = parser.parse_args()
    storage = Path(os.environ.get("BUGTRACKER_ATTACHMENTS_DIR", REPO / ".data" / "attachments"))
    work = Path(tempfile.mkdtemp(prefix="bench-attachments-"))
    token, ticket_id = asyncio.run(_setup())
    auth = f"Authorization: Bearer {token}"
    rows: list[Row] = []
    for size_mib in (1, 25):
        source = work / f"{size_mib}.bin"
        source.write_bytes(os.urandom(size_mib * MIB))
        upload = ["-H", auth, "-F", f"file=@{source}", f"{API}/tickets/{ticket_id}/attachments"]
        for parallel in (1, args.parallel):
            rows.append(
                measure("upload via gateway", size_mib, parallel, args.rounds, [upload] * parallel)
            )
            copies = [["-T", str(source), f"file://{work}/copy-{i}.bin"] for i in range(parallel)]
            rows.append(
                measure("copy into storage (curl file://)", size_mib, parallel, args.rounds, copies)
            )
        attachment = httpx.post(
            f"{API}/tickets/{ticket_id}/attachments",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": (f"{size_mib}.bin", source.read_bytes())},
            timeout=120,
        ).json()
        blob = storage / attachment["sha256"][:2] / attachment["sha256"]
        download = ["-H", auth, f"{API}/attachments/{attachment['id']}/content"]
        for parallel in (1, args.parallel):
            rows.append(
                measure(
                    "download via gateway", size_mib, parallel, args.rounds, [download] * parallel
                )
            )
            reads = [[f"file://{blob}"]] * parallel
            rows.append(
                measure("read from storage (curl file://)", size_mib, parallel, args.rounds, reads)
            )
    report(rows, args)


async def _setup() -> tuple[str, str]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await setup(client)


def report(rows: list[Row], args: argparse.Namespace) -> None:
    lines = [
        f"# Attachments: throughput and memory ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`bench/attachments_bench.py --rounds {args.rounds} --parallel {args.parallel}` "
        "against `make up`; curl for every row. MiB/s counts every byte moved in the "
        "row; memory is the peak resident growth over the row, summed over each "
        "component's processes.",
        "",
        "| what | MiB | parallel | p50 ms per round | MiB/s | gateway RSS +MiB "
        "| tickets RSS +MiB |",
        "|---|---|---|---|---|---|---|",
        *(row.line() for row in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}-{args.label}.md"
    out.write_text(text, encoding="utf-8")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
