"""Assign -> notification visible: an open-loop asyncio + aiohttp driver.

The first bench user assigns tickets (BENCH-2001...) at a fixed rate, each to one of the
other users, whatever the answers' speed (open loop: a slow answer does not slow the
schedule down). Those users listen on GET /api/v1/notifications/stream (SSE) through the
gateway; a notification is "visible" when its `data:` line arrives. Matched by
(assignee, ticket key): each ticket is assigned once per run.

Before measuring, one probe assignment must come through: the events of the earlier
scenarios are worked off first, so they do not count against this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import aiohttp

from suite.cpu import CpuMeter, machine_busy_seconds, own_seconds
from suite.fixtures import NOTIFY_POOL_START, User
from suite.scenarios import Context, current_assignees, other_than

DRAIN_TIMEOUT_SECONDS = 180.0
AFTER_SECONDS = 10.0  # how long to wait for notifications after the last answer
STREAM_PATH = "/api/v1/notifications/stream"
# Open requests at most; more wait for a connection, and that wait counts in their latency
# (the clock starts when a request is due), as it would for clients queueing.
MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        if not seconds:
            return cls(0, float("nan"), float("nan"), float("nan"))
        ordered = sorted(seconds)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3)


@dataclass(frozen=True)
class NotifyResult:
    rate: float  # assignments per second asked for
    achieved: float  # sent per second
    answered: float  # answers per second, from the first send to the last answer
    sent: int
    failed: dict[int, int]  # non-200 answers by status
    missing: int  # answered 200, notification not seen within AFTER_SECONDS
    drain_seconds: float
    request: Percentiles  # the PUT's own latency
    visible: Percentiles  # answer received -> notification visible
    total: Percentiles  # PUT sent -> notification visible
    cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class _Streams:
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    ready: list[asyncio.Event] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, session: aiohttp.ClientSession, url: str, users: list[User]) -> None:
        for user in users:
            ready = asyncio.Event()
            self.ready.append(ready)
            self.tasks.append(asyncio.create_task(self._listen(session, url, user, ready)))

    async def connected(self, within: float = 10) -> None:
        done, _ = await asyncio.wait(
            [asyncio.create_task(event.wait()) for event in self.ready], timeout=within
        )
        failed = [task for task in self.tasks if task.done()]
        if len(done) < len(self.ready) or failed:
            errors = [repr(task.exception()) for task in failed if not task.cancelled()]
            raise RuntimeError(f"notification streams did not connect: {errors}")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _listen(
        self, session: aiohttp.ClientSession, url: str, user: User, ready: asyncio.Event
    ) -> None:
        headers = {"Authorization": f"Bearer {user.token}", "Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(url + STREAM_PATH, headers=headers, timeout=timeout) as response:
            response.raise_for_status()
            ready.set()  # the service subscribed before it answered: nothing is missed
            async for line in response.content:
                if line.startswith(b"data:"):
                    arrived = time.perf_counter()
                    data = json.loads(line[5:])
                    if data.get("type") == "ticket.assigned":
                        self.seen.setdefault((user.id, str(data["ticket_key"])), arrived)
                        self.arrived.set()

    async def wait_for(self, keys: set[tuple[str, str]], within: float) -> None:
        """Until every key has been seen, or `within` seconds have passed."""
        deadline = time.perf_counter() + within
        while not keys <= self.seen.keys():
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.perf_counter())
            if time.perf_counter() >= deadline:
                return


async def _assign(
    session: aiohttp.ClientSession, url: str, token: str, key: str, assignee: User
) -> Answer:
    started = time.perf_counter()  # when the request is due: the task starts on schedule
    async with session.put(
        f"{url}/api/v1/tickets/{key}/assignee",
        json={"assignee_id": assignee.id},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        await response.read()
        return started, time.perf_counter(), response.status


Answer = tuple[float, float, int]  # sent (due), answered, status


async def _plan(ctx: Context) -> list[tuple[str, User]]:
    """(ticket key, new assignee) per assignment, each a listener other than the current
    assignee; the last one is the probe."""
    listeners, bench = ctx.fixture.users[1:], ctx.fixture.bench
    count = int(ctx.options.notify_rate * ctx.options.notify_seconds)
    numbers = range(NOTIFY_POOL_START, NOTIFY_POOL_START + count + 1)
    current = await current_assignees(ctx.env, bench, numbers)
    return [
        (f"{bench.key}-{n}", listeners[other_than(listeners, current.get(n), n)]) for n in numbers
    ]


async def _drive(
    session: aiohttp.ClientSession, url: str, token: str, plan: list[tuple[str, User]], rate: float
) -> tuple[list[Answer], float]:
    """Open loop: request i is due at i / rate, whether or not earlier ones were answered."""
    started = time.perf_counter()
    sends: list[asyncio.Task[Answer]] = []
    for index, (key, assignee) in enumerate(plan):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(asyncio.create_task(_assign(session, url, token, key, assignee)))
    sent_seconds = time.perf_counter() - started
    return list(await asyncio.gather(*sends)), sent_seconds


def _result(
    ctx: Context,
    plan: list[tuple[str, User]],
    answers: list[Answer],
    seen: dict[tuple[str, str], float],
    sent_seconds: float,
    drain: float,
    cpu: dict[str, float],
) -> NotifyResult:
    rate = ctx.options.notify_rate
    ok = {
        (assignee.id, key): answer
        for (key, assignee), answer in zip(plan, answers, strict=True)
        if answer[2] == HTTPStatus.OK
    }
    visible = {key: seen[key] for key in ok if key in seen}
    failed: dict[int, int] = {}
    for _, _, status in answers:
        if status != HTTPStatus.OK:
            failed[status] = failed.get(status, 0) + 1
    first = min((sent for sent, _, _ in answers), default=0.0)
    last = max((answered for _, answered, _ in answers), default=first)
    return NotifyResult(
        rate=rate,
        achieved=len(plan) / (sent_seconds + 1 / rate),
        answered=len(answers) / max(last - first, 1e-9),
        sent=len(plan),
        failed=failed,
        missing=len(ok) - len(visible),
        drain_seconds=drain,
        request=Percentiles.of([answered - sent for sent, answered, _ in answers]),
        visible=Percentiles.of([visible[key] - ok[key][1] for key in visible]),
        total=Percentiles.of([visible[key] - ok[key][0] for key in visible]),
        cpu=cpu,
    )


async def measure(
    ctx: Context, meter: CpuMeter, settle: Callable[[], Awaitable[object]]
) -> NotifyResult:
    assigner, listeners = ctx.fixture.users[0], ctx.fixture.users[1:]
    *plan, probe = await _plan(ctx)
    url = ctx.env.url("gateway")
    streams = _Streams()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    ) as session:
        streams.start(session, url, listeners)
        try:
            await streams.connected()
            drain_started = time.perf_counter()
            await _assign(session, url, assigner.token, *probe)
            await streams.wait_for({(probe[1].id, probe[0])}, DRAIN_TIMEOUT_SECONDS)
            drain = time.perf_counter() - drain_started
            await settle()
            before, own_before = meter.snapshot(), own_seconds()
            machine_before, started = machine_busy_seconds(), time.perf_counter()
            answers, sent_seconds = await _drive(
                session, url, assigner.token, plan, ctx.options.notify_rate
            )
            answered = {
                (assignee.id, key)
                for (key, assignee), (_, _, status) in zip(plan, answers, strict=True)
                if status == HTTPStatus.OK
            }
            await streams.wait_for(answered, AFTER_SECONDS)
            wall = time.perf_counter() - started
            cpu = meter.percent(before, meter.snapshot(), wall)
            cpu["load"] = 100 * (own_seconds() - own_before) / wall
            machine = 100 * (machine_busy_seconds() - machine_before) / wall
            cpu["other"] = max(0.0, machine - sum(cpu.values()))
        finally:
            await streams.stop()
    return _result(ctx, plan, answers, dict(streams.seen), sent_seconds, drain, cpu)
