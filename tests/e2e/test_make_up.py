"""`make up` (its engine, `python -m bugtracker_devstack up`) refuses to start a second
stack beside a running one, or on ports another program holds, in one line and without
touching what runs."""

# ruff: noqa: S603 (every command is this interpreter running the repository's devstack)

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bugtracker_devstack.processes import free_port, port_free, port_open, stop_group
from bugtracker_devstack.stack import PROCESSES, read_env_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

START_TIMEOUT_SECONDS = 180


def _port_env() -> dict[str, str]:
    """Every port `make up` opens, on a free one, so the test never meets a developer's
    own stack (nor `.env`, whose keys only fill what the environment leaves unset)."""
    names = [f"BUGTRACKER_{p.upper()}_PORT" for p in (*PROCESSES, "gateway_metrics")]
    names += ["BUGTRACKER_PG_PORT", "BUGTRACKER_AMQP_PORT", "BUGTRACKER_AMQP_DIST_PORT"]
    names += ["BUGTRACKER_EPMD_PORT", "BUGTRACKER_MAILSINK_PORT"]
    return {name: str(free_port()) for name in names}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL and RabbitMQ
    # run as their own users.
    base = Path(tempfile.mkdtemp(prefix="bugtracker-make-up-"))
    base.chmod(0o755)
    try:
        yield base / ".data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _devstack(command: str, data: Path) -> list[str]:
    return [sys.executable, "-m", "bugtracker_devstack", command, "--data", str(data)]


def _healthy(gateway: str) -> bool:
    try:
        response = httpx.get(f"{gateway}/health", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == httpx.codes.OK and response.json()["status"] == "ok"


def _wait_healthy(gateway: str, first: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _healthy(gateway):
        if first.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the first stack did not come up:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)  # the poll interval while the stack starts


def _refused(command: list[str], env: dict[str, str]) -> str:
    """Run a start that must be refused; its one-line reason."""
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


def test_a_second_make_up_leaves_the_running_stack_alone(data_dir: Path) -> None:
    env = os.environ | _port_env()
    gateway = f"http://127.0.0.1:{env['BUGTRACKER_GATEWAY_PORT']}"
    log = data_dir.parent / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen(
            _devstack("up", data_dir),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(gateway, first, log)

        # The same checkout again: refused before it starts anything.
        reason = _refused(_devstack("up", data_dir), env)
        assert "already running" in reason
        assert str(first.pid) in reason
        assert "make down" in reason

        # Another checkout on the same ports: refused, naming the first port it needs.
        other = data_dir.parent / "other" / ".data"
        reason = _refused(_devstack("up", other), env)
        assert f"port {env['BUGTRACKER_PG_PORT']}" in reason
        assert "BUGTRACKER_PG_PORT" in reason
        assert not (other / "postgres").exists()

        # The first stack still serves: every backend ready, and a login through the gateway.
        assert first.poll() is None
        assert _healthy(gateway)
        secrets = read_env_file(data_dir / "secrets.env")
        login = httpx.post(
            f"{gateway}/api/v1/auth/login",
            json={
                "email": secrets["BUGTRACKER_ADMIN_EMAIL"],
                "password": secrets["BUGTRACKER_ADMIN_PASSWORD"],
            },
            timeout=10,
        )
        assert login.status_code == httpx.codes.OK, login.text
        mail_port = int(env["BUGTRACKER_MAILSINK_PORT"])
        assert port_open(mail_port)  # the SMTP sink notifications sends to

        # `make down` waits until the stack has gone; reaping it is this test's job, as
        # `make` reaps `make up` (a zombie would look alive to `make down`).
        down = subprocess.Popen(
            _devstack("down", data_dir),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert first.wait(timeout=90) == 0
        output, _ = down.communicate(timeout=30)
        assert down.returncode == 0, output
        assert not (data_dir / "postgres" / "data" / "postmaster.pid").exists()
        assert port_free(mail_port)  # the sink stopped with the rest
    finally:
        stop_group(first, timeout=60)


def test_make_up_names_a_port_that_another_program_holds(data_dir: Path) -> None:
    env = os.environ | _port_env()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", int(env["BUGTRACKER_TICKETS_PORT"])))
        listener.listen()
        reason = _refused(_devstack("up", data_dir), env)
    assert f"port {env['BUGTRACKER_TICKETS_PORT']} on 127.0.0.1 (tickets)" in reason
    assert "BUGTRACKER_TICKETS_PORT=" in reason
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "rabbitmq").exists()
