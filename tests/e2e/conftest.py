"""The whole system as separate processes on free ports, driven through the gateway only."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from bugtracker_devstack.processes import stop_group
from bugtracker_devstack.stack import (
    PROCESSES,
    SERVICES,
    Stack,
    replica_name,
    wait_until_ready,
)
from bugtracker_devstack.testing import migrated
from bugtracker_testkit import JWT_PATTERN

ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "e2e admin passphrase 7 walrus kettle"


@dataclass(frozen=True)
class System:
    gateway_url: str
    logs: Path
    admin_email: str = ADMIN_EMAIL
    admin_password: str = ADMIN_PASSWORD
    # The running processes: replica 0 by its name ("tickets"), the others as
    # "tickets#1", ...; a test that stops one puts its replacement here.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Every gateway (one per replica), for clients that spread their requests.
    gateway_urls: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def system(infra: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The six processes, each `infra.replicas` times (two in `make test`): the services'
    replicas behind balancers on the services' ports, the gateways side by side."""
    logs = tmp_path_factory.mktemp("e2e-logs")
    for service in SERVICES:
        migrated(infra, service)
    infra.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    children: dict[str, subprocess.Popen[bytes]] = {}
    balancers = infra.balancers()
    try:
        for balancer in balancers:
            balancer.start()
        for process in PROCESSES:
            for replica in range(infra.replicas):
                name = replica_name(process, replica)
                log = (logs / f"{name}.log").open("wb")
                children[name] = infra.launch(process, log, replica)
        wait_until_ready(infra, PROCESSES, timeout=90)
        yield System(
            gateway_url=infra.url("gateway"),
            logs=logs,
            processes=children,
            gateway_urls=infra.gateway_urls,
        )
    finally:
        for child in reversed(children.values()):
            stop_group(child)
        for balancer in balancers:
            balancer.stop()
    # After the whole e2e run: no process logged a token or a known secret (test_logs.py
    # checks the passwords and refresh tokens it makes itself, too).
    text = "\n".join(path.read_text(errors="replace") for path in logs.glob("*.log"))
    known = [
        ADMIN_PASSWORD,
        infra.internal_token,
        infra.webhooks_secret_key,
        *infra.role_passwords.values(),
    ]
    assert not [secret for secret in known if secret in text], "a secret is in the e2e logs"
    assert not JWT_PATTERN.search(text), "a JSON Web Token is in the e2e logs"


@pytest.fixture(scope="module")
def api(system: System) -> Iterator[httpx.Client]:
    """A client of the gateway (a module whose tests need another client defines its own
    `api`)."""
    with httpx.Client(base_url=system.gateway_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def settle_tickets_view(infra: Stack) -> Callable[[str], None]:
    """`settle(project_id)` waits until the tickets service's membership view holds every
    change of the project made so far (its version has reached the project's): a change in
    projects reaches tickets through an event (docs/adr/0023; within 1 s, which
    tests/e2e/test_membership_view.py times), so a test that checks its effect on tickets
    waits for it first."""
    return lambda project_id: wait_for_tickets_view(infra, project_id)


def wait_for_tickets_view(infra: Stack, project_id: str, *, within: float = 5.0) -> None:

    async def caught_up() -> bool:
        conn = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
        try:
            return bool(
                await conn.fetchval(
                    "SELECT coalesce((SELECT version FROM tickets.project_view WHERE id = $1),"
                    " 0) >= (SELECT version FROM projects.projects WHERE id = $1)",
                    uuid.UUID(project_id),
                )
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + within
    while not asyncio.run(caught_up()):
        if time.monotonic() > deadline:
            raise AssertionError(f"the tickets view did not catch up with project {project_id}")
        time.sleep(0.01)  # the poll interval, not a wait for a fixed duration
