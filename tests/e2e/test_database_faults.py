"""Losing the database costs only what was in flight, on the real system: the tickets
service's PostgreSQL connections killed again and again under concurrent creates through
the gateway, and all of them dropped once (what a PostgreSQL restart does)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.events import EXCHANGE, CloudEvent
from bugtracker_testkit import eventually, register_and_login

pytestmark = pytest.mark.e2e

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE usename = 'bugtracker_tickets'"
)
CLIENTS = 4
KILL_EVERY_SECONDS = 0.25  # at the most often
KILLING_FOR_SECONDS = 8.0  # at the least, and until KILLS_AT_LEAST kills
KILLS_AT_LEAST = 16
ANSWERED_BETWEEN_KILLS = 8  # creates started after a kill and answered before the next
RECOVERY_SECONDS = 5.0
# A kill costs the creates in flight at that moment (their transaction dies with its
# connection), and nothing else: a create that runs wholly between two kills finds the
# killed connections replaced (at checkout, bugtracker_shared.db) and succeeds, unless it
# checked one out in the moment before the service read its end (no ping, by design).
# Measured on a shared 2-core machine: 164 of 165, 121 of 125, 37 of 38 and 233 of 238
# such creates succeeded, each failure starting 0 to 27 ms after a kill. So at most 10 %
# of them (or 2, in a short run on a slow machine) may fail; a pool that handed out dead
# connections, or a service that needed a restart, would fail most of them.
BETWEEN_KILLS_FAILURES_AT_MOST = 0.1
BETWEEN_KILLS_AT_LEAST = 10  # enough creates between kills for the rate to mean something
REQUESTS_AFTER_THE_DROP = 12


@dataclass(frozen=True)
class Kill:
    started: float
    ended: float
    killed: int  # connections terminated


@dataclass(frozen=True)
class Timed:
    started: float
    ended: float
    response: httpx.Response

    def overlaps(self, kill: Kill) -> bool:
        """Whether the request was in flight while `kill` ran."""
        return self.started <= kill.ended and kill.started <= self.ended


@dataclass(frozen=True)
class Owner:
    user_id: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def owner(system: Any) -> Owner:
    with httpx.Client(base_url=system.gateway_url, timeout=10) as api:
        return Owner(*register_and_login(api, "faults"))


@pytest.fixture
async def api(system: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=15) as client:
        yield client


@pytest.fixture
async def superuser(infra: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.postgres.superuser_dsn("bugtracker"))
    try:
        yield conn
    finally:
        await conn.close()


async def _project(api: httpx.AsyncClient, owner: Owner) -> tuple[str, str]:
    """A new project whose first ticket has been created (so tickets knows the project)."""
    key = "D" + uuid.uuid4().hex[:6].upper()
    project = await api.post(
        "/api/v1/projects", json={"key": key, "name": "Faults"}, headers=owner.headers
    )
    assert project.status_code == 201, project.text

    async def first_ticket() -> httpx.Response | None:
        created = await _create(api, owner, key, "first")
        return created if created.status_code == 201 else None

    await eventually(first_ticket, within=10, what="a first ticket in the new project")
    return key, project.json()["id"]


async def _create(api: httpx.AsyncClient, owner: Owner, key: str, title: str) -> httpx.Response:
    return await api.post(
        f"/api/v1/projects/{key}/tickets", json={"title": title}, headers=owner.headers
    )


def _database_unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type") == "application/problem+json"
        and response.json().get("code") == "database_unavailable"
        and response.headers.get("retry-after") == "1"
    )


def _failures(answers: list[httpx.Response]) -> list[str]:
    """Every answer that is neither a 201 nor a 503 database_unavailable problem."""
    return [
        f"{a.status_code} {a.text[:200]}"
        for a in answers
        if a.status_code != 201 and not _database_unavailable(a)
    ]


@pytest.fixture
async def ticket_events(infra: Stack) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of every `ticket.created` event, bound before the test writes."""
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="ticket.created")
        yield queue
    finally:
        await connection.close()


async def _creates_under_kills(
    api: httpx.AsyncClient, owner: Owner, key: str, superuser: asyncpg.Connection
) -> tuple[list[Timed], list[Kill]]:
    """`CLIENTS` clients creating tickets back to back while every tickets connection is
    killed again and again. The rhythm follows the service, not the clock: the next kill
    waits for `ANSWERED_BETWEEN_KILLS` creates started after the last one to be answered
    (and at least `KILL_EVERY_SECONDS`), so a loaded machine, where a create takes longer,
    still has creates between kills to measure."""
    answers: list[Timed] = []
    kills: list[Kill] = []
    stop = asyncio.Event()

    async def client(number: int) -> None:
        sent = 0
        while not stop.is_set():
            sent += 1
            started = time.monotonic()
            answer = await _create(api, owner, key, f"client {number}, create {sent}")
            answers.append(Timed(started, time.monotonic(), answer))

    def answered_since(moment: float) -> Callable[[], Awaitable[bool]]:
        async def enough() -> bool:
            return sum(a.started >= moment for a in answers) >= ANSWERED_BETWEEN_KILLS

        return enough

    async def killer() -> None:
        until = time.monotonic() + KILLING_FOR_SECONDS
        try:
            while time.monotonic() < until or len(kills) < KILLS_AT_LEAST:
                started = time.monotonic()
                killed = await superuser.fetchval(TERMINATE)
                kills.append(Kill(started, time.monotonic(), killed))
                await asyncio.sleep(KILL_EVERY_SECONDS)
                last = kills[-1].ended
                await eventually(
                    answered_since(last),
                    within=30,
                    what=f"{ANSWERED_BETWEEN_KILLS} creates answered after a kill",
                )
        finally:
            stop.set()

    await asyncio.gather(killer(), *(client(n) for n in range(CLIENTS)))
    return answers, kills


async def _stored_tickets(
    superuser: asyncpg.Connection, project_id: str, created: list[dict[str, Any]]
) -> set[str]:
    """The project's tickets, checked: every 201 is among them under its number, the
    numbers have no gaps, and each has exactly one `ticket.created` row in the outbox and
    no such row names another (a create that failed wrote nothing of its event)."""
    tickets = {
        str(row["id"]): row["number"]
        for row in await superuser.fetch(
            "SELECT id, number FROM tickets.tickets WHERE project_id = $1", uuid.UUID(project_id)
        )
    }
    assert {t["id"] for t in created} <= tickets.keys()
    assert all(tickets[t["id"]] == int(t["key"].rsplit("-", 1)[1]) for t in created)
    assert sorted(tickets.values()) == list(range(1, len(tickets) + 1))
    outbox = Counter(
        row["aggregate_id"]
        for row in await superuser.fetch(
            "SELECT aggregate_id FROM tickets.outbox "
            "WHERE routing_key = 'ticket.created' AND payload->'data'->>'project_id' = $1",
            project_id,
        )
    )
    assert outbox == Counter(tickets.keys())
    return set(tickets)


async def _assert_one_event_each(
    queue: aio_pika.abc.AbstractQueue, project_id: str, tickets: set[str]
) -> None:
    """The broker gets each ticket's one `ticket.created` event once the relay is back (a
    publish whose mark as sent a kill undid is sent again: the same event id), and no
    event names a ticket that does not exist."""
    delivered: dict[str, set[str]] = {}

    async def all_delivered() -> bool:
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            event = CloudEvent.model_validate_json(message.body)
            if event.data["project_id"] == project_id:
                delivered.setdefault(event.subject, set()).add(str(event.id))
        return delivered.keys() >= tickets

    await eventually(all_delivered, within=60, what="every ticket.created event")
    assert delivered.keys() == tickets
    assert all(len(ids) == 1 for ids in delivered.values()), delivered


# Its own run is under a minute, but the first e2e test also pays for starting the system,
# and the relay's backoff after the kills may delay the last events by some seconds.
@pytest.mark.timeout(300)
async def test_killing_the_tickets_connections_again_and_again_costs_only_what_was_in_flight(
    api: httpx.AsyncClient,
    owner: Owner,
    superuser: asyncpg.Connection,
    ticket_events: aio_pika.abc.AbstractQueue,
) -> None:
    key, project_id = await _project(api, owner)
    answers, kills = await _creates_under_kills(api, owner, key, superuser)
    stopped = time.monotonic()

    # Served again soon after the kills stop (each probe a create, checked with the rest).
    async def serving() -> httpx.Response | None:
        started = time.monotonic()
        answer = await _create(api, owner, key, "after the kills")
        answers.append(Timed(started, time.monotonic(), answer))
        return answer if answer.status_code == 201 else None

    await eventually(serving, within=RECOVERY_SECONDS, what="creates to succeed again")
    recovered_in = time.monotonic() - stopped

    responses = [a.response for a in answers]
    # Every failure was a quick, retryable 503 problem: never a 500, 502 or 504.
    assert not _failures(responses), _failures(responses)
    # (A kill may find none: the previous one's victims not yet replaced.)
    assert sum(k.killed > 0 for k in kills) > len(kills) / 2, f"the kills hit little: {kills}"
    between = [a for a in answers if a.ended < stopped and not any(a.overlaps(k) for k in kills)]
    succeeded = [a for a in between if a.response.status_code == 201]
    # How long after the last kill each failed one started: a request that checks out a
    # connection before the service has read its end fails too.
    late = [
        round(1000 * (a.started - max(k.ended for k in kills if k.ended <= a.started)))
        for a in between
        if a.response.status_code != 201 and a.started >= kills[0].ended
    ]
    summary = (
        f"{len(succeeded)} of {len(between)} creates between kills succeeded "
        f"(the others started {late} ms after a kill), "
        f"{sum(r.status_code == 201 for r in responses)} of {len(responses)} in all, "
        f"under {len(kills)} kills of {sum(k.killed for k in kills)} connections; "
        f"serving again {recovered_in:.2f}s after the last"
    )
    print(summary)  # noqa: T201 (measured, for the record)
    assert len(between) >= BETWEEN_KILLS_AT_LEAST, summary
    failed = len(between) - len(succeeded)
    assert failed <= max(2, BETWEEN_KILLS_FAILURES_AT_MOST * len(between)), summary

    created = [r.json() for r in responses if r.status_code == 201]
    tickets = await _stored_tickets(superuser, project_id, created)
    await _assert_one_event_each(ticket_events, project_id, tickets)


async def test_dropping_every_tickets_connection_fails_at_most_the_next_request(
    api: httpx.AsyncClient, owner: Owner, superuser: asyncpg.Connection
) -> None:
    key, _ = await _project(api, owner)
    # A few connections in the pool, as a service that has been serving has.
    warm = await asyncio.gather(*(_create(api, owner, key, "warm") for _ in range(CLIENTS)))
    assert [a.status_code for a in warm] == [201] * CLIENTS

    assert await superuser.fetchval(TERMINATE) >= 1

    answers: list[httpx.Response] = []
    for n in range(REQUESTS_AFTER_THE_DROP):
        answers.append(await _create(api, owner, key, f"after the drop {n}"))
        answers.append(await api.get(f"/api/v1/tickets/{key}-1", headers=owner.headers))
    failed = [i for i, answer in enumerate(answers) if answer.status_code not in (200, 201)]
    assert failed in ([], [0]), [answers[i].text for i in failed]
    if failed:
        assert _database_unavailable(answers[0]), answers[0].text
