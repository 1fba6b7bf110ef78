"""PostgreSQL 15 as a child process, data in a directory of ours."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bugtracker_devstack.processes import IS_ROOT, as_user, chown_to, wait_for_port


def _pg_bin() -> Path:
    """The server binaries of the installed PostgreSQL (15 on Debian 12; newest otherwise)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    preferred = Path("/usr/lib/postgresql/15/bin/initdb")
    if preferred in candidates:
        return preferred.parent
    if candidates:
        return candidates[-1].parent
    raise RuntimeError("PostgreSQL server binaries not found; run `make bootstrap`")


PG_USER = "postgres"


@dataclass
class Postgres:
    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    def superuser_dsn(self, database: str = "postgres") -> str:
        # Trusted only on the private unix socket (mode 0700), never over TCP.
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def start(self, *, fast: bool = False, timeout: float = 60.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o700)
        user = PG_USER if IS_ROOT else None
        if user:
            chown_to(self.base, user)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                as_user(
                    PG_USER,
                    [
                        str(_pg_bin() / "initdb"),
                        "-D",
                        str(self.data),
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "-U",
                        "postgres",
                    ],
                ),
                check=True,
                stdout=subprocess.DEVNULL,
                cwd="/tmp",
            )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.socket_dir}",
            "-c max_connections=200",
        ]
        if fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        subprocess.run(
            as_user(
                PG_USER,
                [
                    str(_pg_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.base / "postgres.log"),
                    "-o",
                    " ".join(options),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ],
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd="/tmp",
        )
        wait_for_port(self.port, timeout)

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        pg_ctl = str(_pg_bin() / "pg_ctl")
        subprocess.run(
            as_user(PG_USER, [pg_ctl, "-D", str(self.data), "-m", "fast", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            cwd="/tmp",
        )

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
