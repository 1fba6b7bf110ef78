"""RabbitMQ as a child process (a private node: its own name, ports, epmd and data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bugtracker_devstack.processes import IS_ROOT, as_user, chown_to, stop_group, wait_for_port

RABBIT_USER = "rabbitmq"


@dataclass
class RabbitMQ:
    base: Path
    port: int
    dist_port: int
    epmd_port: int
    node_name: str
    process: subprocess.Popen[bytes] | None = None
    epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def url_for(self, user: str, password: str) -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl` against this node (same node name and Erlang cookie)."""
        env = self._env()
        # The CLI itself, not Debian's /usr/sbin wrapper, which resets HOME (the cookie).
        ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl"
        argv = as_user(RABBIT_USER, ["env", *(f"{k}={v}" for k, v in env.items()), ctl])
        result = subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd="/tmp"
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def import_definitions(self, definitions: dict[str, Any]) -> None:
        """Users, rights, exchanges, queues and policies in one rabbitmqctl call."""
        path = self.base / "definitions.json"
        path.write_text(json.dumps(definitions))
        path.chmod(0o600)
        if IS_ROOT:
            shutil.chown(path, RABBIT_USER, RABBIT_USER)
        self.ctl("import_definitions", str(path))

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/lib/rabbitmq/bin",
            "HOME": str(self.base),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def start(self, *, timeout: float = 60.0, log: Path | None = None) -> None:
        self.launch(timeout=timeout, log=log)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_port(self.port, timeout, self.process)

    def launch(self, *, timeout: float = 60.0, log: Path | None = None) -> None:
        """Start the node without waiting for it: it boots while other work goes on."""
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").touch()
        chown_to(self.base, RABBIT_USER)
        out = open(log or self.base / "server.out", "ab")  # noqa: SIM115 (owned by the child)
        env = self._env()
        # Our own epmd in the foreground, so it is stopped with the node instead of
        # outliving it as the daemon Erlang would start by itself.
        self.epmd = subprocess.Popen(
            as_user(RABBIT_USER, ["env", *(f"{k}={v}" for k, v in env.items()), "epmd"]),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/tmp",
        )
        wait_for_port(self.epmd_port, timeout, self.epmd)
        argv = as_user(
            RABBIT_USER, ["env", *(f"{k}={v}" for k, v in env.items()), "rabbitmq-server"]
        )
        self.process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd="/tmp"
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, timeout=30)
        if self.epmd is not None:
            stop_group(self.epmd)
