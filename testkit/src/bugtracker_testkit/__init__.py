"""Helpers for the tests of every component: app clients, tokens, fault injection, polling.

A dev-only workspace member: no runtime package depends on it or imports it (an
import-linter contract), and no image contains it."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import asyncpg
import httpx
from fastapi import FastAPI

T = TypeVar("T")
S = TypeVar("S")

# A password the auth service's policy accepts, for users that tests register.
PASSWORD = "plum lantern orbit quietly 47"  # noqa: S105 (a test user's, public)
# How much of the last result `wait_until` shows when it fails.
_SHOWN_AT_MOST = 1000


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy (returned), or fail at the deadline:
    for outcomes that arrive asynchronously, such as an event's effect."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)  # the poll interval, not a wait for a fixed duration


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], *, within: float = 10.0) -> T:
    """Call `fetch` until `done` holds for its result (returned), or fail the test at the
    deadline, showing the last result: the blocking twin of `eventually`."""
    deadline = time.monotonic() + within
    while not done(result := fetch()):
        if time.monotonic() > deadline:
            shown = repr(result)
            if len(shown) > _SHOWN_AT_MOST:
                shown = shown[:_SHOWN_AT_MOST] + "…"
            raise AssertionError(f"not done within {within:.0f}s; the last result: {shown}")
        time.sleep(0.05)  # the poll interval, not a wait for a fixed duration
    return result


# -- users, through the public API (the gateway's, or the auth service's) -----------------


def register(client: httpx.Client, name: str, *, password: str = PASSWORD) -> tuple[str, str]:
    """Register `name` (the display name) under a new e-mail address; returns the user's
    id and that address."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    created = client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": name},
    )
    if created.status_code != HTTPStatus.CREATED:
        raise AssertionError(f"register {name}: {created.status_code} {created.text}")
    user_id: str = created.json()["id"]
    return user_id, email


def register_and_login(
    client: httpx.Client, name: str, *, password: str = PASSWORD
) -> tuple[str, dict[str, str]]:
    """Register `name` as `register` does and log in; returns the user's id and the
    Authorization header of the access token."""
    user_id, email = register(client, name, password=password)
    login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    if login.status_code != HTTPStatus.OK:
        raise AssertionError(f"log in {name}: {login.status_code} {login.text}")
    return user_id, {"Authorization": f"Bearer {login.json()['access_token']}"}


# Any JSON Web Token: a base64url JSON header, a dot, a base64url JSON payload (for
# checking that none reaches a log).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


@asynccontextmanager
async def app_client(
    app: FastAPI, *, client: str = "127.0.0.1", forwarded_allow_ips: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, called in-process through httpx from the
    address `client`. With `forwarded_allow_ips`, behind uvicorn's proxy-headers
    middleware as `uvicorn --forwarded-allow-ips` runs it (X-Forwarded-For and
    X-Forwarded-Proto count only from those peers); without, no proxy header counts."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app, startup_timeout=30) as manager:
        asgi = manager.app
        if forwarded_allow_ips is not None:
            from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

            asgi = ProxyHeadersMiddleware(asgi, trusted_hosts=forwarded_allow_ips)  # type: ignore[arg-type,assignment]
        transport = httpx.ASGITransport(app=asgi, client=(client, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


class TokenMinter:
    """Signs access tokens like the auth service does, with a throw-away Ed25519 key."""

    def __init__(self, *, issuer: str = "bugtracker-auth", audience: str = "bugtracker") -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.issuer = issuer
        self.audience = audience
        self._key = Ed25519PrivateKey.generate()
        self.kid = f"test-{uuid.uuid4().hex[:8]}"

    def jwks(self) -> dict[str, Any]:
        from jwt.algorithms import OKPAlgorithm

        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    async def fetch_jwks(self) -> dict[str, Any]:
        return self.jwks()

    def mint(
        self,
        user_id: uuid.UUID,
        *,
        role: str = "member",
        ttl_seconds: int = 600,
        **overrides: Any,
    ) -> str:
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ttl_seconds,
            "role": role,
        }
        claims.update(overrides)
        return jwt.encode(
            claims, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "at+jwt"}
        )


# -- fault injection ------------------------------------------------------------------------
# A write is one transaction when a fault after any of its statements, or at its COMMIT,
# leaves nothing of it behind. The faults are real PostgreSQL errors, raised by a trigger
# that a test installs as the superuser on the table of the statement that is to fail; a
# deferred constraint trigger fails the COMMIT itself.

_FAULT_OPERATIONS = frozenset({"INSERT", "UPDATE", "DELETE"})


@dataclass(frozen=True)
class Fault:
    """Where a fault strikes: the first row that an `operation` (INSERT, UPDATE or DELETE)
    writes to `table` (schema-qualified), before it is written; or, `at_commit`, the COMMIT
    of a transaction that wrote such a row. `when` narrows it to some rows (a trigger's
    WHEN condition on NEW or OLD, e.g. "NEW.routing_key = 'ticket.commented'").

    An INSERT ... ON CONFLICT meets an INSERT fault even when the row exists already."""

    operation: str
    table: str
    at_commit: bool = False
    when: str | None = None

    def __post_init__(self) -> None:
        if self.operation not in _FAULT_OPERATIONS or self.table.count(".") != 1:
            raise ValueError(f"not a fault point: {self.operation} on {self.table}")

    @property
    def schema(self) -> str:
        return self.table.split(".", 1)[0]

    def trigger(self) -> str:
        """The CREATE TRIGGER statement (of the trigger `injected_fault`)."""
        when = f" WHEN ({self.when})" if self.when else ""
        function = f"{self.schema}.injected_fault()"
        if self.at_commit:
            return (
                f"CREATE CONSTRAINT TRIGGER injected_fault AFTER {self.operation} ON {self.table}"
                f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{when} EXECUTE FUNCTION {function}"
            )
        return (
            f"CREATE TRIGGER injected_fault BEFORE {self.operation} ON {self.table}"
            f" FOR EACH ROW{when} EXECUTE FUNCTION {function}"
        )

    def __str__(self) -> str:
        where = f" where {self.when}" if self.when else ""
        if self.at_commit:
            return f"a fault at the COMMIT after {self.operation} {self.table}{where}"
        return f"a fault on {self.operation} {self.table}{where}"


def fault_on(operation: str, table: str, *, when: str | None = None) -> Fault:
    """A fault on the statement that writes `table`: it comes after every statement
    before that one."""
    return Fault(operation, table, when=when)


def fault_at_commit(operation: str, table: str, *, when: str | None = None) -> Fault:
    """A fault at the COMMIT of a transaction that wrote `table`: after every statement."""
    return Fault(operation, table, at_commit=True, when=when)


class InjectedFault:
    """An installed fault; `fired` counts how often it struck (a sequence, which a
    rollback does not undo)."""

    def __init__(self, db: asyncpg.Connection, fault: Fault) -> None:
        self._db = db
        self.fault = fault

    async def fired(self) -> int:
        sequence = f"{self.fault.schema}.injected_fault_fired"
        counted: int = await self._db.fetchval(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"  # noqa: S608
        )
        return counted


@asynccontextmanager
async def injected_fault(db: asyncpg.Connection, fault: Fault) -> AsyncIterator[InjectedFault]:
    """Install `fault` for the block, with `db` a superuser's asyncpg connection (the
    trigger's function runs as its owner, so any service role meets it)."""
    schema = fault.schema
    await db.execute(f"CREATE SEQUENCE {schema}.injected_fault_fired")
    await db.execute(
        f"CREATE FUNCTION {schema}.injected_fault() RETURNS trigger LANGUAGE plpgsql "
        "SECURITY DEFINER SET search_path = pg_catalog AS $$ BEGIN "
        f"PERFORM nextval('{schema}.injected_fault_fired'); "
        "RAISE EXCEPTION 'injected fault on % of %.%', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME; "
        "END $$"
    )
    try:
        await db.execute(fault.trigger())
        try:
            yield InjectedFault(db, fault)
        finally:
            await db.execute(f"DROP TRIGGER injected_fault ON {fault.table}")
    finally:
        await db.execute(f"DROP FUNCTION {schema}.injected_fault()")
        await db.execute(f"DROP SEQUENCE {schema}.injected_fault_fired")


async def schema_rows(
    db: asyncpg.Connection, schema: str, tables: Sequence[str]
) -> dict[str, list[str]]:
    """Every row of the `tables` of `schema`, as sorted JSON texts (an outbox row's
    `sent_at` left out: the relay sets it whenever it publishes)."""
    rows: dict[str, list[str]] = {}
    for table in tables:
        found = await db.fetch(
            f"SELECT (to_jsonb(t) - 'sent_at')::text AS row FROM {schema}.{table} t"  # noqa: S608
        )
        rows[table] = sorted(row["row"] for row in found)
    return rows


async def _outbox_position(db: asyncpg.Connection, schema: str) -> int:
    position: int = await db.fetchval(
        f"SELECT coalesce(max(position), 0) FROM {schema}.outbox"  # noqa: S608
    )
    return position


async def assert_write_is_atomic(
    db: asyncpg.Connection,
    fault: Fault,
    write: Callable[[], Awaitable[httpx.Response]],
    *,
    tables: Sequence[str],
    status: int,
    events: Sequence[str] = (),
) -> httpx.Response:
    """Prove that `write` (a request) is one transaction at `fault`: with the fault
    installed it fails, the fault struck once, and no row of the service's `tables`
    (of the fault's schema, its outbox among them) differs from before; without it the
    same request answers `status`, changes those tables and writes exactly the outbox
    `events` (routing keys, in order). Returns that answer.

    `db` is a superuser's asyncpg connection. In process a failed write answers 500
    problem+json (its error mapped by the app's handlers), or raises the error itself."""
    schema = fault.schema
    before = await schema_rows(db, schema, tables)
    async with injected_fault(db, fault) as injected:
        try:
            failed = await write()
        except Exception as exc:  # the error escaped the app: the write failed
            if "injected fault" not in str(exc):
                raise
        else:
            if (
                failed.status_code != HTTPStatus.INTERNAL_SERVER_ERROR
                or "problem+json" not in failed.headers.get("content-type", "")
            ):
                raise AssertionError(
                    f"{fault}: expected a 500 problem+json, got {failed.status_code} "
                    f"{failed.text[:500]}"
                )
        if (fired := await injected.fired()) != 1:
            raise AssertionError(f"{fault}: the fault struck {fired} times, not once")
    after = await schema_rows(db, schema, tables)
    if after != before:
        changed = {
            table: {
                "gone": sorted(set(before[table]) - set(after[table])),
                "new": sorted(set(after[table]) - set(before[table])),
            }
            for table in tables
            if after[table] != before[table]
        }
        raise AssertionError(f"{fault}: the failed write left a trace: {changed}")

    position = await _outbox_position(db, schema)
    succeeded = await write()
    if succeeded.status_code != status:
        raise AssertionError(
            f"without the fault: expected {status}, got {succeeded.status_code} "
            f"{succeeded.text[:500]}"
        )
    if await schema_rows(db, schema, tables) == before:
        raise AssertionError("without the fault the write changed nothing: a vacuous test")
    written = [
        row["routing_key"]
        for row in await db.fetch(
            f"SELECT routing_key FROM {schema}.outbox WHERE position > $1 "  # noqa: S608
            "ORDER BY position",
            position,
        )
    ]
    if written != list(events):
        raise AssertionError(f"without the fault: expected the events {events}, got {written}")
    return succeeded


def routing_key_is(name: str) -> str:
    """A fault's `when` for the outbox row of the event `name` alone."""
    return f"NEW.routing_key = '{name}'"


@dataclass(frozen=True)
class Write(Generic[S]):
    """A write for `assert_write_is_atomic`: its request, made in a scene `S` that the test
    sets up; the status it answers; the events it records (routing keys, in order); and a
    fault point after each of its statements, named after the statement it follows."""

    request: Callable[[S], Awaitable[httpx.Response]]
    status: int
    events: tuple[str, ...]
    faults: dict[str, Fault]


@dataclass(frozen=True)
class FaultCase(Generic[S]):
    """One fault point of one write; as a test id, "write, fault point"."""

    write_name: str
    fault_name: str
    write: Write[S]

    def __str__(self) -> str:
        return f"{self.write_name}, {self.fault_name}"

    async def assert_atomic(
        self, db: asyncpg.Connection, scene: S, *, tables: Sequence[str]
    ) -> httpx.Response:
        """`assert_write_is_atomic` for the write, made in `scene`, at this fault point."""
        write = self.write
        return await assert_write_is_atomic(
            db,
            write.faults[self.fault_name],
            lambda: write.request(scene),
            tables=tables,
            status=write.status,
            events=write.events,
        )


def fault_cases(writes: Mapping[str, Write[S]]) -> list[FaultCase[S]]:
    """Every fault point of every write, for `pytest.mark.parametrize(..., ids=str)`."""
    return [
        FaultCase(name, fault, write) for name, write in writes.items() for fault in write.faults
    ]
