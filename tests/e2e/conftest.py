"""The whole system as separate processes on free ports, driven through the gateway only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bugtracker_devstack.processes import stop_group
from bugtracker_devstack.stack import PROCESSES, SERVICES, Stack, wait_until_ready
from bugtracker_devstack.testing import migrated
from bugtracker_shared.testing import JWT_PATTERN

ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "e2e admin passphrase 7 walrus kettle"


@dataclass(frozen=True)
class System:
    gateway_url: str
    logs: Path
    admin_email: str = ADMIN_EMAIL
    admin_password: str = ADMIN_PASSWORD
    # The running processes by name; a test that stops one puts its replacement here.
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def system(infra: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    logs = tmp_path_factory.mktemp("e2e-logs")
    for service in SERVICES:
        migrated(infra, service)
    infra.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for process in PROCESSES:
            log = (logs / f"{process}.log").open("wb")
            children[process] = infra.launch(process, log)
        wait_until_ready(infra, PROCESSES, timeout=60)
        yield System(gateway_url=infra.url("gateway"), logs=logs, processes=children)
    finally:
        for child in reversed(children.values()):
            stop_group(child)
    # After the whole e2e run: no process logged a token or a known secret (test_logs.py
    # checks the passwords and refresh tokens it makes itself, too).
    text = "\n".join(path.read_text(errors="replace") for path in logs.glob("*.log"))
    known = [ADMIN_PASSWORD, infra.internal_token, *infra.role_passwords.values()]
    assert not [secret for secret in known if secret in text], "a secret is in the e2e logs"
    assert not JWT_PATTERN.search(text), "a JSON Web Token is in the e2e logs"
