"""`python -m bugtracker_devstack up|down`: the engine behind `make up` and `make down`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from bugtracker_devstack.mailsink import DEFAULT_PORT as MAILSINK_PORT
from bugtracker_devstack.mailsink import MailSink
from bugtracker_devstack.postgres import PG_USER, Postgres
from bugtracker_devstack.processes import data_dir_for_servers, port_free, stop_group
from bugtracker_devstack.rabbitmq import RABBIT_USER, RabbitMQ
from bugtracker_devstack.redis import REDIS_USER, Redis
from bugtracker_devstack.stack import (
    PROCESSES,
    REPO_ROOT,
    SERVICES,
    Ports,
    Stack,
    new_password,
    new_secret_key,
    read_env_file,
    wait_until_ready,
)

DOWN_TIMEOUT_SECONDS = 60

COLORS = {
    "auth": 36,
    "projects": 32,
    "tickets": 33,
    "notifications": 35,
    "webhooks": 31,
    "gateway": 34,
    "mailsink": 90,
}


def _secrets(data: Path) -> dict[str, str]:
    """Role passwords, the admin's credentials, the webhooks' secret key and the key of the
    notification mails' unsubscribe links, made once and kept in .data/ (0600): the keys
    must outlive a restart (one decrypts the stored secrets, the other checks the links
    of the mails sent already)."""
    path = data / "secrets.env"
    values = read_env_file(path)
    changed = False
    for service in SERVICES:
        key = f"PG_PASSWORD_{service.upper()}"
        if key not in values:
            values[key] = new_password()
            changed = True
    if "BUGTRACKER_ADMIN_EMAIL" not in values:
        values["BUGTRACKER_ADMIN_EMAIL"] = os.environ.get(
            "BUGTRACKER_ADMIN_EMAIL", "admin@bugtracker.local"
        )
        changed = True
    if "BUGTRACKER_ADMIN_PASSWORD" not in values:
        values["BUGTRACKER_ADMIN_PASSWORD"] = os.environ.get(
            "BUGTRACKER_ADMIN_PASSWORD", new_password()
        )
        changed = True
    if "BUGTRACKER_WEBHOOKS_SECRET_KEY" not in values:
        # Not from the environment: `.env` holds compose's placeholder for it.
        values["BUGTRACKER_WEBHOOKS_SECRET_KEY"] = new_secret_key()
        changed = True
    if "BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY" not in values:
        # Not from the environment either: `.env` holds compose's placeholder for it.
        values["BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY"] = new_secret_key()
        changed = True
    if changed:
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return values


def _say(text: str) -> None:
    """Print, unless nobody is listening any more (the terminal or a pipe went away)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, flush=True)


def _pump(name: str, stream: IO[bytes]) -> None:
    color = COLORS.get(name, 0)
    prefix = f"\033[{color}m{name:<13}|\033[0m " if sys.stdout.isatty() else f"{name:<13}| "
    for raw in iter(stream.readline, b""):
        _say(prefix + raw.decode(errors="replace").rstrip("\n"))


class StartRefusedError(Exception):
    """Why `make up` cannot start, said in one line (no traceback): nothing was touched."""


def _port_setting(name: str, default: int) -> tuple[str, int]:
    setting = f"BUGTRACKER_{name}_PORT"
    return setting, int(os.environ.get(setting, str(default)))


def _hold_lock(data: Path) -> IO[str]:
    """One `make up` per checkout: an exclusive lock on .data/up.lock, held while it runs
    and released by the kernel however it ends (a crash or SIGKILL too)."""
    handle = (data / "up.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        pid_file = data / "up.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else "?"
        raise StartRefusedError(
            f"a stack is already running from this checkout (pid {pid}); "
            "use it, or stop it with `make down` (or Ctrl-C where it runs)"
        ) from None
    return handle


def _check_ports(ports: dict[str, tuple[str, int]]) -> None:
    """Refuse to start, naming the port and its setting, when something else listens."""
    for what, (setting, port) in ports.items():
        if not port_free(port):
            raise StartRefusedError(
                f"port {port} on 127.0.0.1 ({what}) is in use by another program: "
                f"stop that program or choose another port in .env ({setting}=...)"
            )


def _attachments_at(stack: Stack) -> str:
    """Where the tickets service keeps attachments' bytes, as its settings will say."""
    env = stack.env("tickets")
    endpoint = env.get("BUGTRACKER_ATTACHMENTS_S3_ENDPOINT")
    if endpoint:
        return f"{endpoint} bucket {env.get('BUGTRACKER_ATTACHMENTS_S3_BUCKET', '')}"
    return env.get("BUGTRACKER_ATTACHMENTS_DIR", "")


def _external_smtp() -> bool:
    """The environment (or `.env`) names an SMTP server: notifications sends there and
    `make up` runs no sink of its own."""
    return bool(os.environ.get("BUGTRACKER_SMTP_HOST") or os.environ.get("BUGTRACKER_SMTP_PORT"))


def _mail_at(stack: Stack) -> str:
    """Where notification mails go, for the banner."""
    if stack.mail_sink is not None:
        return (
            f"smtp://127.0.0.1:{stack.mail_sink.port}, kept as .eml files in "
            f"{stack.mail_sink.directory} (a local sink: nothing is delivered)"
        )
    env = stack.env("notifications")
    host = env.get("BUGTRACKER_SMTP_HOST", "")
    if not host:
        return "off: no BUGTRACKER_SMTP_HOST (unset it and BUGTRACKER_SMTP_PORT for the sink)"
    port = env.get("BUGTRACKER_SMTP_PORT", "25")
    return f"sent to {host}:{port} (BUGTRACKER_SMTP_HOST / BUGTRACKER_SMTP_PORT)"


def up(data: Path) -> int:
    data = data_dir_for_servers(data, (PG_USER, RABBIT_USER, REDIS_USER))
    data.mkdir(parents=True, exist_ok=True)
    lock = _hold_lock(data)
    try:
        file_env = read_env_file(REPO_ROOT / ".env")
        os.environ.update({k: v for k, v in file_env.items() if k not in os.environ})
        secrets = _secrets(data)
        stack = _configured_stack(data, secrets)
        (data / "up.pid").write_text(str(os.getpid()))
        return _run(stack, data, secrets)
    finally:
        lock.close()


def _configured_stack(data: Path, secrets: dict[str, str]) -> Stack:
    """The stack as the environment and `.env` configure it, once its ports are free."""
    settings = {
        p: _port_setting(p.upper(), getattr(Ports(), p)) for p in (*PROCESSES, "gateway_metrics")
    }
    pg_setting, pg_port = _port_setting("PG", 5432)
    amqp_setting, amqp_port = _port_setting("AMQP", 5672)
    dist_setting, dist_port = _port_setting("AMQP_DIST", amqp_port + 20000)
    redis_setting, redis_port = _port_setting("REDIS", 6379)
    # The mail sink, unless the environment names an SMTP server for notifications.
    sink = None if _external_smtp() else _port_setting("MAILSINK", MAILSINK_PORT)
    _check_ports(
        {
            "PostgreSQL": (pg_setting, pg_port),
            "RabbitMQ": (amqp_setting, amqp_port),
            "RabbitMQ's Erlang distribution": (dist_setting, dist_port),
            "Redis": (redis_setting, redis_port),
            **{process.replace("_", " "): setting for process, setting in settings.items()},
            **({"the mail sink": sink} if sink else {}),
        }
    )
    return Stack(
        postgres=Postgres(base=data / "postgres", port=pg_port),
        rabbitmq=RabbitMQ(
            base=data / "rabbitmq",
            port=amqp_port,
            dist_port=dist_port,
            epmd_port=int(os.environ.get("BUGTRACKER_EPMD_PORT", "4369")),
            node_name="bugtracker@localhost",
        ),
        ports=Ports(**{p: port for p, (_, port) in settings.items()}),
        keys_dir=data / "keys",
        attachments_dir=data / "attachments",
        redis=Redis(base=data / "redis", port=redis_port),
        role_passwords={s: secrets[f"PG_PASSWORD_{s.upper()}"] for s in SERVICES},
        webhooks_secret_key=secrets["BUGTRACKER_WEBHOOKS_SECRET_KEY"],
        notifications_unsubscribe_key=secrets["BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY"],
        mail_sink=MailSink(directory=data / "mail", port=sink[1]) if sink else None,
        # Readable key=value lines in a terminal; containers and CI keep the JSON default.
        extra_env={"BUGTRACKER_LOG_FORMAT": os.environ.get("BUGTRACKER_LOG_FORMAT", "console")},
    )


def _start_mail_sink(stack: Stack, children: list[subprocess.Popen[bytes]]) -> None:
    """The SMTP sink, if the stack has one, with its lines shown like the services'; it
    joins `children`: watched, and stopped, with them (a sink that fails to start has
    stopped itself)."""
    if stack.mail_sink is None:
        return
    _say(f"starting the mail sink on 127.0.0.1:{stack.mail_sink.port}")
    stack.mail_sink.start(subprocess.PIPE)
    sink = stack.mail_sink.process
    assert sink is not None  # noqa: S101 (started)
    assert sink.stdout is not None  # noqa: S101 (stdout=PIPE)
    children.append(sink)
    threading.Thread(target=_pump, args=("mailsink", sink.stdout), daemon=True).start()


def _launch(stack: Stack, children: list[subprocess.Popen[bytes]]) -> None:
    """The mail sink (when the stack has one), then the six processes, each added to
    `children` as it starts (watched, and stopped, together) with its lines shown."""
    _start_mail_sink(stack, children)
    for process in PROCESSES:
        child = stack.launch(process, subprocess.PIPE)
        children.append(child)
        assert child.stdout is not None  # noqa: S101 (stdout=PIPE above)
        threading.Thread(target=_pump, args=(process, child.stdout), daemon=True).start()


def _run(stack: Stack, data: Path, secrets: dict[str, str]) -> int:
    """Start everything, serve until stopped, then stop what this invocation started."""
    pg_port, amqp_port = stack.postgres.port, stack.rabbitmq.port
    children: list[subprocess.Popen[bytes]] = []
    postgres_started = False
    stopping = threading.Event()
    serving = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()
        if not serving.is_set():  # still starting: abandon the start-up at once
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        started = time.monotonic()
        _say(f"starting RabbitMQ on 127.0.0.1:{amqp_port} (data in {data / 'rabbitmq'})")
        stack.rabbitmq.launch()
        if stack.redis is not None:
            _say(f"starting Redis on 127.0.0.1:{stack.redis.port} (limits; kept in memory)")
            stack.redis.start()
        _say(f"starting PostgreSQL on 127.0.0.1:{pg_port} (data in {data / 'postgres'})")
        postgres_started = True  # set first: a start that fails half-way is stopped too
        stack.postgres.start()
        asyncio.run(stack.bootstrap_database())
        _say("applying migrations: " + ", ".join(SERVICES))
        stack.migrate_all()
        _say(
            stack.create_admin(
                secrets["BUGTRACKER_ADMIN_EMAIL"], secrets["BUGTRACKER_ADMIN_PASSWORD"]
            )
        )
        stack.rabbitmq.wait_ready()
        _launch(stack, children)
        wait_until_ready(stack, PROCESSES, timeout=60)
        _say(
            "\n"
            f"  Bugtracker is up (in {time.monotonic() - started:.0f} s).\n"
            f"  Gateway:  {stack.url('gateway')}/api/v1\n"
            f"  Swagger:  {stack.url('gateway')}/docs\n"
            f"  AMQP:     {stack.rabbitmq.url} (exchange bugtracker.events)\n"
            + (
                f"  Limits:   {stack.redis.url} (shared rate limits, login throttling)\n"
                if stack.redis
                else ""
            )
            + f"  Files:    {_attachments_at(stack)} (attachments)\n"
            + f"  Webhooks: may call {stack.env('webhooks')['BUGTRACKER_WEBHOOKS_ALLOWED_HOSTS']}"
            " over http (BUGTRACKER_WEBHOOKS_ALLOWED_HOSTS); secrets encrypted with the key"
            f" in {data / 'secrets.env'}\n"
            + f"  Mail:     {_mail_at(stack)}\n"
            + f"  Metrics:  {stack.metrics_url('gateway')} and /metrics on each service\n"
            f"  Admin:    {secrets['BUGTRACKER_ADMIN_EMAIL']} / "
            f"{secrets['BUGTRACKER_ADMIN_PASSWORD']}  (kept in {data / 'secrets.env'})\n"
            "  Stop with Ctrl-C or `make down`.\n"
        )
        serving.set()
        while not stopping.is_set():
            if any(child.poll() is not None for child in children):
                _say("a process exited; stopping everything")
                return 1
            stopping.wait(0.5)
        return 0
    finally:
        # Whatever happened (Ctrl-C, a closed terminal or pipe, a failed step), stop what
        # this invocation started, and only that.
        _say("stopping…")
        for child in reversed(children):
            stop_group(child)
        if stack.redis is not None:
            stack.redis.stop()
        stack.rabbitmq.stop()
        if postgres_started:
            stack.postgres.stop()
        with contextlib.suppress(FileNotFoundError):
            (data / "up.pid").unlink()
        _say("stopped.")


def down(data: Path) -> int:
    pid_file = data / "up.pid"
    if not pid_file.exists():
        print("nothing to stop: no `make up` is running from this checkout")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        print("the recorded `make up` is gone already")
        return 0
    print(f"asked `make up` (pid {pid}) to stop; waiting until it has", flush=True)
    # Only then are the ports and the data directory free again, so that a `make up`
    # right after `make down` does not find PostgreSQL still shutting down.
    deadline = time.monotonic() + DOWN_TIMEOUT_SECONDS
    while _running(pid):
        if time.monotonic() > deadline:
            print(f"`make up` (pid {pid}) is still stopping after {DOWN_TIMEOUT_SECONDS} s")
            return 1
        time.sleep(0.2)
    print("stopped")
    return 0


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def seed_command(data: Path, key: str, tickets: int) -> int:
    from bugtracker_devstack.seed import seed

    secrets = read_env_file(data / "secrets.env")
    postgres = Postgres(
        base=data / "postgres", port=int(os.environ.get("BUGTRACKER_PG_PORT", "5432"))
    )
    asyncio.run(
        seed(
            postgres.superuser_dsn("bugtracker"),
            key=key,
            tickets=tickets,
            owner_email=secrets.get("BUGTRACKER_ADMIN_EMAIL", "admin@bugtracker.local"),
        )
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="bugtracker_devstack")
    parser.add_argument("command", choices=["up", "down", "seed"])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / ".data")
    parser.add_argument("--project", default="SEED", help="seed: project key (made if absent)")
    parser.add_argument("--tickets", type=int, default=1_000_000, help="seed: how many")
    args = parser.parse_args()
    if args.command == "down":
        return down(args.data)
    if args.command == "seed":
        return seed_command(args.data, args.project, args.tickets)
    try:
        return up(args.data)
    except StartRefusedError as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    except (subprocess.CalledProcessError, TimeoutError, RuntimeError) as exc:
        # Already stopped what it had started; the servers' logs say more.
        print(f"make up: start-up failed: {exc} (logs under {args.data})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # stopped while starting; everything started is stopped
        return 130


if __name__ == "__main__":
    sys.exit(main())
