"""What the test suite needs from the devstack: a throw-away stack on free ports."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from bugtracker_devstack.mailsink import MailSink
from bugtracker_devstack.postgres import Postgres
from bugtracker_devstack.processes import free_port
from bugtracker_devstack.rabbitmq import RabbitMQ
from bugtracker_devstack.rabbitmq_definitions import COMPONENTS, definitions
from bugtracker_devstack.redis import Redis
from bugtracker_devstack.stack import SERVICES, Ports, Stack, new_password

# The suites drive the system hard from one IP as a few users (the permission matrix alone
# makes about a thousand requests): production limits would throttle them. The gateway's
# and auth's own tests check the limits with tiny values instead.
TEST_ENV = {
    "BUGTRACKER_GATEWAY_RATE_LIMIT": "100000/minute",
    "BUGTRACKER_GATEWAY_AUTH_RATE_LIMIT": "100000/minute",
    # The 401s of many tests (wrong and expired tokens on purpose), all from 127.0.0.1 and
    # counted across the gateways in the run's Redis.
    "BUGTRACKER_GATEWAY_AUTH_FAILURE_RATE_LIMIT": "100000/minute",
    # The failed logins of many tests, all from 127.0.0.1 and counted across the auth
    # replicas in Redis: ten a minute would hold back every other test's login. The limits
    # per account and client still hold (tests/e2e/test_replicas.py relies on them).
    "BUGTRACKER_AUTH_LOGIN_IP_FAILURES_PER_MINUTE": "100000",
    # Webhook retries a test can wait for (the default schedule spans a day and a half),
    # and receivers on 127.0.0.1 allowed (the SSRF tests start their own service to check
    # the refusals).
    "BUGTRACKER_WEBHOOKS_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5",
    "BUGTRACKER_WEBHOOKS_ALLOWED_HOSTS": "127.0.0.1",
    "BUGTRACKER_WEBHOOKS_POLL_SECONDS": "0.2",
    # Mail retries and digests a test can wait for.
    "BUGTRACKER_NOTIFICATIONS_MAIL_POLL_SECONDS": "0.2",
    "BUGTRACKER_NOTIFICATIONS_MAIL_RETRY_SECONDS": "0.5",
    "BUGTRACKER_NOTIFICATIONS_DIGEST_POLL_SECONDS": "0.5",
}


@contextmanager
def throwaway_stack(replicas: int = 1) -> Iterator[Stack]:
    """PostgreSQL, RabbitMQ, Redis and an SMTP sink in a temporary directory on free ports,
    removed after; the processes it launches run `replicas` times each (see
    `Stack.replicas`). The mails notifications sends are files in `stack.mail_dir`
    (`bugtracker_testkit.mail.read_mails`)."""
    base = Path(tempfile.mkdtemp(prefix="bugtracker-test-"))
    base.chmod(0o755)
    amqp_port = free_port()
    stack = Stack(
        postgres=Postgres(base=base / "postgres", port=free_port()),
        rabbitmq=RabbitMQ(
            base=base / "rabbitmq",
            port=amqp_port,
            dist_port=free_port(),
            epmd_port=free_port(),
            node_name=f"bt-test-{amqp_port}@localhost",
        ),
        ports=Ports(
            **{p: free_port() for p in ("gateway", *SERVICES)}, gateway_metrics=free_port()
        ),
        keys_dir=base / "keys",
        attachments_dir=base / "attachments",
        redis=Redis(base=base / "redis", port=free_port()),
        mail_sink=MailSink(directory=base / "mail", port=free_port()),
        role_passwords={service: new_password() for service in SERVICES},
        # Every component talks to RabbitMQ as its own user, with only its own rights.
        amqp_passwords={component: new_password() for component in COMPONENTS},
        extra_env=TEST_ENV,
        replicas=replicas,
    )
    # The links in the mails point at this stack's gateway, whatever the environment says.
    stack.extra_env = {**TEST_ENV, "BUGTRACKER_PUBLIC_URL": stack.url("gateway")}
    if replicas > 1:
        # The gateways side by side (the first on the gateway's port), each service's
        # replicas behind the balancer that holds the service's port.
        stack.replica_ports = {
            "gateway": [stack.ports.gateway, *(free_port() for _ in range(replicas - 1))],
            "gateway_metrics": [
                stack.ports.gateway_metrics,
                *(free_port() for _ in range(replicas - 1)),
            ],
            **{service: [free_port() for _ in range(replicas)] for service in SERVICES},
        }
    try:
        stack.postgres.start(fast=True)
        stack.rabbitmq.launch()
        assert stack.redis is not None  # noqa: S101 (set above)
        stack.redis.start()
        assert stack.mail_sink is not None  # noqa: S101 (set above)
        stack.mail_sink.start()
        stack.rabbitmq.wait_ready()
        stack.rabbitmq.import_definitions(definitions(stack.amqp_passwords))
        asyncio.run(stack.bootstrap_database())
        yield stack
    finally:
        if stack.mail_sink is not None:
            stack.mail_sink.stop()
        if stack.redis is not None:
            stack.redis.stop()
        stack.rabbitmq.stop()
        stack.postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


_migrated: set[str] = set()


def migrated(stack: Stack, service: str) -> Stack:
    """Apply the service's migrations once per run (twice the first time: idempotence)."""
    if service not in _migrated:
        stack.migrate(service)
        stack.migrate(service)
        _migrated.add(service)
    return stack


async def truncate_schema(stack: Stack, service: str) -> None:
    """Empty every table of a service's schema (the version table excepted)."""
    conn = await asyncpg.connect(stack.database_url(service).replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 "
            "AND tablename <> 'alembic_version'",
            service,
        )
        if tables:
            names = ", ".join(f'{service}."{row["tablename"]}"' for row in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()
