"""An S3-compatible server for tests: moto's (`moto_server`, the dev group's `moto[server]`)
as a child process on a free port, in memory, stopped at the end.

    with moto_s3() as endpoint:  # "http://127.0.0.1:<port>"
        ...

Any access key and secret key are accepted; buckets start empty in each server.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

_STARTUP_SECONDS = 30.0
_STOP_SECONDS = 10.0
_tried: set[int] = set()


def moto_server() -> Path:
    """The `moto_server` executable of the venv that runs the tests."""
    found = Path(sys.executable).parent / "moto_server"
    if not found.exists():
        raise RuntimeError(f"{found} is missing: moto[server] is in the dev group (uv sync)")
    return found


def _free_port() -> int:
    """A port to listen on, below the kernel's ephemeral range (where the run's outgoing
    connections take theirs; the same choice as bugtracker_devstack's `free_port`)."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    while True:
        port = random.randint(20000, ephemeral - 1)  # noqa: S311 (a port, not a secret)
        if port in _tried:
            continue
        _tried.add(port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _answers(endpoint: str) -> bool:
    try:
        httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(_STOP_SECONDS)


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """Run `moto_server` on a free port of 127.0.0.1 until the block ends; yields its
    endpoint URL once it answers. Its output goes to a temporary log, shown when it fails
    to start."""
    with tempfile.TemporaryDirectory(prefix="moto-s3-") as base:
        log_path = Path(base) / "moto_server.log"
        with open(log_path, "wb") as log:
            port = _free_port()
            endpoint = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(  # noqa: S603 (our venv's executable, fixed arguments)
                [str(moto_server()), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=base,
            )
            try:
                deadline = time.monotonic() + _STARTUP_SECONDS
                while not _answers(endpoint):
                    if process.poll() is not None or time.monotonic() > deadline:
                        shown = log_path.read_text(errors="replace")[-2000:]
                        raise RuntimeError(
                            f"moto_server on port {port} did not start "
                            f"(exit code {process.poll()}): {shown}"
                        )
                    time.sleep(0.1)  # the poll interval, not a wait for a fixed duration
                yield endpoint
            finally:
                _stop(process)
