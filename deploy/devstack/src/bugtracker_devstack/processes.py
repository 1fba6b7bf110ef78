"""Small process helpers: free ports, waiting for a port, running as a service user."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

IS_ROOT = os.geteuid() == 0


_given: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free to listen on, below the kernel's ephemeral range and not given before
    in this process. A port the kernel picks for `bind(0)` comes from the ephemeral range,
    where the run's own outgoing connections (to PostgreSQL, RabbitMQ, Redis, the
    services) take their local ports too: a server started minutes later on such a port
    found it taken (seen with the e2e system's second gateway)."""
    high = _ephemeral_start() - 1
    while True:
        port = random.randint(20000, high)  # noqa: S311 (a port, not a secret)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `port` now (a socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout:.0f}s")


def as_user(user: str, argv: list[str]) -> list[str]:
    """Run `argv` as `user` when we are root (PostgreSQL and Erlang refuse root)."""
    if IS_ROOT:
        return ["runuser", "-u", user, "--", *argv]
    return argv


# Where `make up` keeps its data when the checkout is in a directory the server users
# cannot enter (a clone under /root, mode 0700): `.data` is then a link to it.
SHARED_DATA_ROOT = Path("/var/lib/bugtracker-devstack")


def data_dir_for_servers(data: Path, users: tuple[str, ...]) -> Path:
    """`data`, or, when running as root and one of `users` (PostgreSQL's and RabbitMQ's,
    which refuse to run as root) cannot reach it, a directory of the same content under
    SHARED_DATA_ROOT that `data` becomes a symbolic link to. Returns the real path, the
    one to give the servers."""
    data = data.absolute()
    if not IS_ROOT or data.is_symlink():
        return data.resolve()
    parent = data.parent
    parent.mkdir(parents=True, exist_ok=True)
    if all(
        subprocess.run(as_user(user, ["test", "-x", str(parent)]), check=False).returncode == 0
        for user in users
    ):
        return data
    target = SHARED_DATA_ROOT / hashlib.sha256(str(data).encode()).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    for directory in (SHARED_DATA_ROOT, target):
        directory.chmod(0o755)
    if data.exists():  # from an earlier attempt: keep its secrets and keys
        for entry in data.iterdir():
            shutil.move(str(entry), target / entry.name)
        data.rmdir()
    data.symlink_to(target, target_is_directory=True)
    return target


def chown_to(path: Path, user: str) -> None:
    if IS_ROOT:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def stop_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
