"""Login latency of the auth service, in-process, against real PostgreSQL.

    uv run python bench/login_latency.py [--logins 100]

Starts its own PostgreSQL and RabbitMQ (as `make test` does), runs the auth app in-process
with its production settings (argon2id m=19 MiB, t=2, p=1), registers one user, then logs
in N times one after another (successful logins), and the same number of failed ones with
an unknown email and with a wrong password (throttling switched off for the run), to show
that the three take about the same time. Prints a table; it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from bugtracker_auth.main import create_app
from bugtracker_auth.settings import Settings
from bugtracker_devstack.stack import Stack
from bugtracker_devstack.testing import migrated, throwaway_stack
from bugtracker_testkit import app_client

PASSWORD = "plum lantern orbit quietly 47"  # noqa: S105 (a throw-away test account)
EMAIL = "bench@example.com"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(client: httpx.AsyncClient, email: str, password: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run(stack: Stack, logins: int) -> None:
    settings = Settings(
        database_url=stack.database_url("auth"),
        amqp_url=stack.rabbitmq.url,
        keys_dir=Path(tempfile.mkdtemp()) / "keys",
        login_ip_failures_per_minute=10**9,
        login_account_free_failures=10**9,
        log_level="WARNING",
    )
    async with app_client(create_app(settings)) as client:
        created = await client.post(
            "/api/v1/auth/register",
            json={"email": EMAIL, "password": PASSWORD, "display_name": "Bench"},
        )
        created.raise_for_status()
        await timed(client, EMAIL, PASSWORD, 3)  # warm-up
        rows = {
            "login, success": await timed(client, EMAIL, PASSWORD, logins),
            "login, wrong password": await timed(client, EMAIL, "wrong password, long", logins),
            "login, unknown email": await timed(client, "nobody@example.com", PASSWORD, logins),
        }
    print(f"\nauth login latency, sequential, in-process, N={logins} each (ms)\n")
    print(f"| {'case':<22} | {'p50':>6} | {'p90':>6} | {'p99':>6} | {'mean':>6} | {'max':>6} |")
    print(f"|{'-' * 24}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for name, values in rows.items():
        print(
            f"| {name:<22} | {percentile(values, 0.5):6.1f} | {percentile(values, 0.9):6.1f} "
            f"| {percentile(values, 0.99):6.1f} | {statistics.mean(values):6.1f} "
            f"| {max(values):6.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    with throwaway_stack() as stack:
        migrated(stack, "auth")
        asyncio.run(run(stack, args.logins))


if __name__ == "__main__":
    main()
