"""Redis as a child process: the store of the limits shared by every replica (gateway rate
limits, auth's login throttling; docs/adr/0035). In memory only: nothing is saved, which
is what counters that expire within the hour need."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bugtracker_devstack.processes import as_user, chown_to, stop_group, wait_for_port

REDIS_USER = "redis"


def redis_server() -> str:
    """The apt package's binary (/usr/bin/redis-server)."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("redis-server is not installed (deploy/bootstrap.sh installs it)")
    return found


@dataclass
class Redis:
    base: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 30.0, log: Path | None = None) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        chown_to(self.base, REDIS_USER)
        out = open(log or self.base / "server.out", "ab")  # noqa: SIM115 (owned by the child)
        argv = [
            redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.base),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            # Counters only: when memory is full, the ones closest to expiry go first.
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "volatile-ttl",
        ]
        self.process = subprocess.Popen(
            as_user(REDIS_USER, argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/tmp",
        )
        wait_for_port(self.port, timeout, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None
