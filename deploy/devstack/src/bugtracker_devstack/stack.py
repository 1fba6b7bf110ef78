"""The whole system on one machine: infrastructure (PostgreSQL, RabbitMQ, Redis), database
bootstrap, migrations and the six processes, wired through environment variables exactly
as in production."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx

from bugtracker_devstack.balancer import Balancer
from bugtracker_devstack.mailsink import MailSink
from bugtracker_devstack.postgres import Postgres
from bugtracker_devstack.rabbitmq import RabbitMQ
from bugtracker_devstack.redis import Redis

SERVICES = ("auth", "projects", "tickets", "notifications", "webhooks")
PROCESSES = (*SERVICES, "gateway")
DATABASE = "bugtracker"
REPO_ROOT = Path(__file__).resolve().parents[4]
# The sender of notification mails unless BUGTRACKER_MAIL_FROM says otherwise.
DEFAULT_MAIL_FROM = "Bugtracker <bugtracker@localhost>"
# How long uvicorn keeps an idle keep-alive connection (its default: 5 s). It closes one
# exactly that long after handing over the last answer, however late the client read it;
# a client reuses a connection as long as its own pool allows (httpx: 5 s, an ingress or
# load balancer: 60 s) counted from its read. Were the server's limit not well above
# that, a request could go out on a connection just as the server closes it, and fail
# with no answer at all. 75 s, as nginx's own keepalive_timeout.
KEEP_ALIVE_SECONDS = 75


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines of an env file (`.env`, `.data/secrets.env`); none if absent."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


def role_name(service: str) -> str:
    return f"bugtracker_{service}"


def new_secret_key() -> str:
    """Base64 of 32 random bytes (BUGTRACKER_WEBHOOKS_SECRET_KEY,
    BUGTRACKER_NOTIFICATIONS_UNSUBSCRIBE_KEY)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def replica_name(process: str, replica: int) -> str:
    """How the stack's users name one replica: "tickets" for the first, "tickets#1", ..."""
    return process if replica == 0 else f"{process}#{replica}"


@dataclass
class Ports:
    gateway: int = 8000
    auth: int = 8001
    projects: int = 8002
    tickets: int = 8003
    notifications: int = 8004
    webhooks: int = 8005
    # The gateway's internal Prometheus endpoint (not on its public port).
    gateway_metrics: int = 9000

    def of(self, process: str) -> int:
        return int(getattr(self, process))


@dataclass
class Stack:
    postgres: Postgres
    rabbitmq: RabbitMQ
    ports: Ports
    keys_dir: Path
    # The store of the limits every replica shares (gateway rate limits, auth's login
    # throttling; docs/adr/0035). None: each process counts on its own.
    redis: Redis | None = None
    role_passwords: dict[str, str] = field(default_factory=dict)
    # RabbitMQ users per component (deploy/rabbitmq); a component without one uses guest.
    amqp_passwords: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Processes per component. With more than one, each service's replicas listen on ports
    # of their own behind a balancer on the service's port (bugtracker_devstack.balancer:
    # what a Kubernetes Service does), and the gateways listen side by side
    # (`gateway_urls`), as behind a load balancer the client picks.
    replicas: int = 1
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    # Where the tickets service keeps attachments' bytes (BUGTRACKER_ATTACHMENTS_DIR) unless
    # `extra_env` points it at an S3-compatible store; None: the service's default.
    attachments_dir: Path | None = None
    # Guards the /internal endpoints (auth's revoked sessions for the gateway, projects'
    # membership snapshot for tickets); one per run of the stack.
    internal_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # The key that encrypts webhooks' signing secrets at rest: `make up` keeps one in
    # .data/secrets.env (a new key could not decrypt the stored secrets).
    webhooks_secret_key: str = field(default_factory=new_secret_key)
    # The key that signs the unsubscribe links of notification mails: `make up` keeps one
    # in .data/secrets.env (a new key would void the links of the mails already sent).
    notifications_unsubscribe_key: str = field(default_factory=new_secret_key)
    # The SMTP sink the notifications service sends to (bugtracker_devstack.mailsink),
    # started and stopped with the stack. None: none runs; notifications sends where
    # BUGTRACKER_SMTP_HOST / BUGTRACKER_SMTP_PORT of the environment say.
    mail_sink: MailSink | None = None

    def database_url(self, service: str) -> str:
        password = self.role_passwords[service]
        return (
            f"postgresql+asyncpg://{role_name(service)}:{password}"
            f"@127.0.0.1:{self.postgres.port}/{DATABASE}"
        )

    def amqp_url(self, process: str) -> str:
        password = self.amqp_passwords.get(process)
        if password is None:
            return self.rabbitmq.url
        return self.rabbitmq.url_for(role_name(process), password)

    def url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ports.of(process)}"

    def replica_port(self, process: str, replica: int = 0) -> int:
        """Where one replica listens: the process's own port when it runs alone."""
        if self.replicas == 1:
            return self.ports.of(process)
        return self.replica_ports[process][replica]

    def replica_url(self, process: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.replica_port(process, replica)}"

    @property
    def mail_dir(self) -> Path | None:
        """Where the sink keeps each message as an `.eml` file (bugtracker_testkit.mail)."""
        return self.mail_sink.directory if self.mail_sink else None

    @property
    def smtp_port(self) -> int | None:
        """The sink's SMTP port on 127.0.0.1."""
        return self.mail_sink.port if self.mail_sink else None

    @property
    def gateway_urls(self) -> list[str]:
        return [self.replica_url("gateway", r) for r in range(self.replicas)]

    def balancers(self) -> list[Balancer]:
        """One balancer per service in front of its replicas (none for a single replica)."""
        if self.replicas == 1:
            return []
        return [Balancer(self.ports.of(s), self.replica_ports[s]) for s in SERVICES]

    def metrics_url(self, process: str) -> str:
        """Where Prometheus scrapes a process: the gateway keeps it off its public port."""
        if process == "gateway":
            return f"http://127.0.0.1:{self.ports.gateway_metrics}/metrics"
        return f"{self.url(process)}/metrics"

    def env(self, process: str, replica: int = 0) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        prefix = f"BUGTRACKER_{process.upper()}_"
        values: dict[str, str] = {}
        if process in SERVICES:
            values["DATABASE_URL"] = self.database_url(process)
            values["AMQP_URL"] = self.amqp_url(process)
            values["JWKS_URL"] = f"{self.url('auth')}/.well-known/jwks.json"
        if process == "auth":
            values["KEYS_DIR"] = str(self.keys_dir)
        values["INTERNAL_TOKEN"] = self.internal_token  # every process: services, gateway
        if process == "gateway":
            values["AMQP_URL"] = self.amqp_url(process)
        if process in ("projects", "gateway", "notifications"):
            values["AUTH_URL"] = self.url("auth")
        if process in ("auth", "tickets", "gateway", "webhooks"):
            values["PROJECTS_URL"] = self.url("projects")
        if process in ("auth", "gateway") and self.redis is not None:
            values["REDIS_URL"] = self.redis.url
        if process == "gateway":
            values["METRICS_PORT"] = str(self.replica_port("gateway_metrics", replica))
            values["TICKETS_URL"] = self.url("tickets")
            values["NOTIFICATIONS_URL"] = self.url("notifications")
            values["WEBHOOKS_URL"] = self.url("webhooks")
        if process == "webhooks":
            values["SECRET_KEY"] = self.webhooks_secret_key
        if process == "notifications":
            values["UNSUBSCRIBE_KEY"] = self.notifications_unsubscribe_key
            env.update(self.mail_env())
        env.update({prefix + key: value for key, value in values.items()})
        if process == "webhooks":
            # Endpoints on this machine (a receiver a developer or a test runs locally).
            env.setdefault("BUGTRACKER_WEBHOOKS_ALLOWED_HOSTS", "127.0.0.1,localhost")
        if process == "tickets" and self.attachments_dir is not None:
            env.setdefault("BUGTRACKER_ATTACHMENTS_DIR", str(self.attachments_dir))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def mail_env(self) -> dict[str, str]:
        """The settings of the notifications service's mail, shared (unprefixed) names:
        the sink's address when the stack runs one, else what the environment says; the
        links in the mails point at the gateway unless BUGTRACKER_PUBLIC_URL says where."""
        env = {**os.environ, **self.extra_env}
        mail = {
            "BUGTRACKER_MAIL_FROM": env.get("BUGTRACKER_MAIL_FROM", DEFAULT_MAIL_FROM),
            "BUGTRACKER_PUBLIC_URL": env.get("BUGTRACKER_PUBLIC_URL", self.url("gateway")),
        }
        if self.mail_sink is not None:
            mail["BUGTRACKER_SMTP_HOST"] = self.mail_sink.host
            mail["BUGTRACKER_SMTP_PORT"] = str(self.mail_sink.port)
        return mail

    async def bootstrap_database(self) -> None:
        """Create the database, one role and one schema per service (idempotent).

        Each role owns its schema and nothing else: it cannot read another service's
        tables, and it has no rights on `public`.
        """
        conn = await asyncpg.connect(self.postgres.superuser_dsn())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.postgres.superuser_dsn(DATABASE))
        try:
            await conn.execute(f'REVOKE ALL ON DATABASE "{DATABASE}" FROM PUBLIC')
            await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            for service in SERVICES:
                role = role_name(service)
                password = self.role_passwords[service]
                quoted = password.replace("'", "''")
                has_role = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                verb = "ALTER" if has_role else "CREATE"
                await conn.execute(
                    f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    f"PASSWORD '{quoted}'"
                )
                await conn.execute(f'GRANT CONNECT ON DATABASE "{DATABASE}" TO {role}')
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}")
                await conn.execute(f"ALTER ROLE {role} SET search_path = {service}")
        finally:
            await conn.close()

    def migrate(self, service: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
            cwd=REPO_ROOT / "services" / service,
            env=self.env(service),
            check=True,
        )

    def migrate_all(self) -> None:
        """Every service's migrations, side by side (each touches only its own schema)."""
        with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
            list(pool.map(self.migrate, SERVICES))

    def command(self, process: str, replica: int = 0) -> list[str]:
        module = f"bugtracker_{process}.main:create_app"
        return [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.replica_port(process, replica)),
            "--no-access-log",
            "--no-server-header",  # the gateway is public: no `server: uvicorn`
            "--timeout-graceful-shutdown",
            "5",
            "--timeout-keep-alive",  # the client closes an idle connection, not the server
            str(KEEP_ALIVE_SECONDS),
            # Proxy headers (docs/adr/0027): the gateway decides the client address itself
            # (BUGTRACKER_GATEWAY_TRUSTED_PROXIES, none here), so uvicorn takes none; a
            # service takes them from the gateway's address only.
            *(
                ["--no-proxy-headers"]
                if process == "gateway"
                else ["--forwarded-allow-ips", "127.0.0.1"]
            ),
        ]

    def launch(
        self, process: str, output: IO[bytes] | int, replica: int = 0
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(process, replica),
            env=self.env(process, replica),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )

    def create_admin(self, email: str, password: str) -> str:
        env = self.env("auth") | {
            "BUGTRACKER_ADMIN_EMAIL": email,
            "BUGTRACKER_ADMIN_PASSWORD": password,
        }
        result = subprocess.run(
            [sys.executable, "-m", "bugtracker_auth.cli", "create-admin"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        return result.stdout.strip()


def new_password() -> str:
    return secrets.token_urlsafe(24)


def wait_until_ready(stack: Stack, processes: tuple[str, ...], timeout: float) -> None:
    """Poll each process's readiness endpoint until it answers 200 or the deadline passes."""
    deadline = time.monotonic() + timeout
    for process in processes:
        path = "/health" if process == "gateway" else "/health/ready"
        for replica in range(stack.replicas):
            url = stack.replica_url(process, replica) + path
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == httpx.codes.OK:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{process} #{replica} not ready within {timeout:.0f}s")
                time.sleep(0.1)
