"""What the gateway adds: GET /api/v1/users/me through the gateway vs directly on auth.

    uv run python bench/gateway_overhead.py [--seconds 10] [--concurrency 50]

Starts a throw-away stack (PostgreSQL, RabbitMQ, the four services and the gateway as
separate uvicorn processes, as the e2e suite does; the test stack's raised rate limits,
so the limiter runs but never refuses), logs in as the admin, then drives each target
with an asyncio + aiohttp closed loop of C concurrent clients for S seconds, traffic only
to 127.0.0.1. Prints a table; it measures, it does not assert. The load generator runs
on the same machine and takes CPU from the processes it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from bugtracker_devstack.processes import stop_group
from bugtracker_devstack.stack import PROCESSES, SERVICES, wait_until_ready
from bugtracker_devstack.testing import migrated, throwaway_stack

ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "bench admin passphrase 9 otter lamp"  # noqa: S105 (throw-away stack)
PATH = "/api/v1/users/me"


async def load(url: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(concurrency):  # warm-up: open the connections
            async with session.get(url, headers=headers) as response:
                await response.read()
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:  # noqa: PLR2004
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


async def login(gateway: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway}/api/v1/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        ) as response,
    ):
        body = await response.json()
        return str(body["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    with throwaway_stack() as stack:
        for service in SERVICES:
            migrated(stack, service)
        stack.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        children = []
        try:
            for process in PROCESSES:
                children.append(stack.launch(process, (logs / f"{process}.log").open("wb")))
            wait_until_ready(stack, PROCESSES, timeout=60)
            token = asyncio.run(login(stack.url("gateway")))
            results = {
                "direct (auth)": asyncio.run(
                    load(stack.url("auth") + PATH, token, args.seconds, args.concurrency)
                ),
                "via gateway": asyncio.run(
                    load(stack.url("gateway") + PATH, token, args.seconds, args.concurrency)
                ),
            }
        finally:
            for child in reversed(children):
                with contextlib.suppress(Exception):
                    stop_group(child)
    direct, gateway = results["direct (auth)"], results["via gateway"]
    print(f"\nGET {PATH}, c={args.concurrency}, {args.seconds:.0f} s each, 127.0.0.1")
    print(f"{'target':<16}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in results.items():
        print(
            f"{name:<16}{row['requests']:>10.0f}{row['errors']:>8.0f}{row['rps']:>10.0f}"
            f"{row['p50']:>10.1f}{row['p99']:>10.1f}"
        )
    print(
        f"gateway: +{gateway['p50'] - direct['p50']:.1f} ms p50, "
        f"{100 * gateway['rps'] / direct['rps']:.0f} % of direct throughput"
    )


if __name__ == "__main__":
    main()
