"""Webhook deliveries against a running `make up`: throughput, latency, and where it goes.

    uv run python bench/webhooks_bench.py [--tickets 300] [--clients 4] [--fanout 1,5]

One bench account makes a project per run, webhooks for `ticket.*` on it pointing at a
local receiver (bugtracker_testkit.receiver, aiohttp, in this process), then creates
tickets through the gateway with `--clients` concurrent clients (closed loop) or one
every `--pace-ms` (open loop, for `--paced-seconds`), and waits until every ticket's
`ticket.created` has arrived once per webhook (or `--deadline` seconds after the run
started):

- deliveries per second at the receiver (first to last arrival), with 0 webhooks (the
  event source alone: the ticket-create rate) and with each `--fanout` (a fan-out run
  creates at most `--max-deliveries` / webhooks tickets, so that it fits the deadline);
- latency of each delivery, from the create request's response and from the event's
  own `time` (set in the tickets service while it handles the request);
- where the time goes, per event, from the rows the services keep (read as the
  PostgreSQL superuser over `make up`'s unix socket, so as root; `--no-db` skips it):
  event time -> the tickets outbox row's `sent_at` (the relay published it, confirmed)
  -> the webhooks inbox row's `processed_at` (the recorder took the event off the
  queue) -> arrival at the receiver (recorded, claimed, signed and sent), with the rate
  of each stage;
- a bare baseline in the same session: the same receiver sent the same bodies directly
  by aiohttp and by httpx with `--clients` connections (what local HTTP alone does).

Every delivery's signature is checked with standardwebhooks' `Webhook(secret).verify`;
duplicates and missing deliveries are counted. It measures, it does not assert; the
output is written under bench/results/ like bench/run.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import secrets
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from bugtracker_devstack.postgres import Postgres
from bugtracker_testkit.receiver import Received, Receiver, receiving
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from suite.cpu import CpuMeter, listeners, machine_busy_seconds

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PASSWORD = "quartz-meadow-lantern-58-amber"  # noqa: S105 (a throw-away bench account)
PORTS = {
    "gw": 8000,
    "auth": 8001,
    "proj": 8002,
    "tick": 8003,
    "notif": 8004,
    "hooks": 8005,
    "pg": 5432,
    "mq": 5672,
}
# The wall clock at a monotonic instant: the receiver stamps arrivals with monotonic().
WALL_MINUS_MONO = time.time() - time.monotonic()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values, in the values' unit; nan if none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


# --- the system -------------------------------------------------------------------------


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(
            method, f"{self.base}{path}", json=body, headers=self.auth
        ) as response:
            text = await response.text()
            if response.status >= HTTPStatus.MULTIPLE_CHOICES:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text else None

    async def sign_in(self) -> None:
        email = f"bench-hooks-{secrets.token_hex(4)}@example.com"
        await self.call(
            "POST",
            "/auth/register",
            {"email": email, "password": PASSWORD, "display_name": "Bench hooks"},
        )
        login = await self.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
        self.token = login["access_token"]

    async def project(self) -> str:
        key = f"WH{secrets.randbelow(10**6)}"
        await self.call("POST", "/projects", {"key": key, "name": f"Webhooks bench {key}"})
        return key

    async def webhook(self, project: str, url: str) -> tuple[str, str]:
        hook = await self.call(
            "POST",
            f"/projects/{project}/webhooks",
            {"url": url, "events": ["ticket.*"], "description": "bench"},
        )
        return hook["id"], hook["secret"]


# --- one run -----------------------------------------------------------------------------


@dataclass
class Create:
    sent: float  # monotonic
    answered: float
    ticket_id: str


@dataclass
class Arrival:
    hook: int
    got: Received
    event: dict[str, Any]

    @property
    def ticket_id(self) -> str:
        return str(self.event.get("data", {}).get("id", ""))

    @property
    def name(self) -> str:
        return str(self.event.get("type", ""))


@dataclass
class Run:
    label: str
    webhooks: int
    tickets: int
    clients: int | None
    pace_ms: float | None
    creates: list[Create] = field(default_factory=list)
    create_errors: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    hook_ids: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    timed_out: bool = False
    stages: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    retried: int = 0

    # ---- counts
    def created(self) -> list[Arrival]:
        return [a for a in self.arrivals if a.name.endswith(".ticket.created.v1")]

    def bad_signatures(self) -> int:
        bad = 0
        for arrival in self.arrivals:
            try:
                Webhook(self.secrets[arrival.hook]).verify(arrival.got.body, arrival.got.headers)
            except WebhookVerificationError:
                bad += 1
        return bad

    def duplicates(self) -> int:
        seen = Counter((a.hook, a.got.webhook_id) for a in self.arrivals)
        return sum(n - 1 for n in seen.values())

    def missing(self) -> int:
        got = {(a.hook, a.ticket_id) for a in self.created()}
        return sum(
            (hook, c.ticket_id) not in got for hook in range(self.webhooks) for c in self.creates
        )

    def other_events(self) -> int:
        return len(self.arrivals) - len(self.created())

    # ---- rates
    def create_rate(self) -> float:
        if not self.creates:
            return float("nan")
        span = max(c.answered for c in self.creates) - min(c.sent for c in self.creates)
        return len(self.creates) / span

    def delivery_rate(self) -> float:
        if len(self.arrivals) < 2:  # noqa: PLR2004
            return float("nan")
        stamps = [a.got.at for a in self.arrivals]
        return (len(stamps) - 1) / (max(stamps) - min(stamps))

    def end_to_end(self) -> float:
        if not self.arrivals:
            return float("nan")
        return max(a.got.at for a in self.arrivals) - min(c.sent for c in self.creates)

    # ---- latency
    def from_response(self) -> list[float]:
        answered = {c.ticket_id: c.answered for c in self.creates}
        return [a.got.at - answered[a.ticket_id] for a in self.created() if a.ticket_id in answered]

    def from_event_time(self) -> list[float]:
        out = []
        for a in self.created():
            stamp = datetime.fromisoformat(a.event["time"]).timestamp()
            out.append(a.got.at + WALL_MINUS_MONO - stamp)
        return out


async def settle(meter: CpuMeter, *, below: float = 15.0, limit: float = 20.0) -> None:
    """Until the system's processes together use less than `below` % CPU (the previous
    run's leftovers worked off), at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await meter.busy(0.5) < below:
            return


async def create_tickets(api: Api, project: str, run: Run) -> None:
    path = f"/projects/{project}/tickets"
    body = {"title": "webhook bench", "description": "A ticket made by bench/webhooks_bench.py."}

    async def one(i: int) -> None:
        sent = time.monotonic()
        try:
            ticket = await api.call("POST", path, {**body, "title": f"webhook bench {i}"})
        except (RuntimeError, aiohttp.ClientError):
            run.create_errors += 1
            return
        run.creates.append(Create(sent, time.monotonic(), str(ticket["id"])))

    if run.pace_ms is None:
        queue = iter(range(run.tickets))

        async def client() -> None:
            for i in queue:
                await one(i)

        await asyncio.gather(*(client() for _ in range(run.clients or 1)))
        return
    started = time.monotonic()
    tasks = []
    for i in range(run.tickets):
        await asyncio.sleep(max(0.0, started + i * run.pace_ms / 1000 - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


async def collect(receiver: Receiver, run: Run, prefix: str, start_index: int) -> int:
    """Parse the arrivals since `start_index` that belong to this run; the next index."""
    received = receiver.received
    end = len(received)
    for got in received[start_index:end]:
        if got.path.startswith(prefix):
            hook = int(got.path.removeprefix(prefix))
            run.arrivals.append(Arrival(hook, got, json.loads(got.body)))
    return end


async def measure(
    api: Api,
    receiver: Receiver,
    meter: CpuMeter,
    run: Run,
    *,
    deadline: float,
) -> Run:
    await settle(meter)
    project = await api.project()
    run_tag = secrets.token_hex(3)
    prefix = f"/hook/{run_tag}/"
    for i in range(run.webhooks):
        hook_id, secret = await api.webhook(project, f"{receiver.url}{prefix}{i}")
        run.hook_ids.append(hook_id)
        run.secrets.append(secret)
    index = len(receiver.received)
    before, machine_before = meter.snapshot(), machine_busy_seconds()
    own_before = time.process_time()
    started = time.monotonic()
    creating = asyncio.create_task(create_tickets(api, project, run))
    while True:
        await asyncio.sleep(0.05)
        index = await collect(receiver, run, prefix, index)
        if creating.done():
            expected = len(run.creates) * run.webhooks
            if len({(a.hook, a.ticket_id) for a in run.created()}) >= expected:
                break
        if time.monotonic() - started > deadline:
            run.timed_out = True
            break
    if not creating.done():
        creating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await creating
    last = max([c.answered for c in run.creates] + [a.got.at for a in run.arrivals])
    run.wall = last - started
    after = meter.snapshot()
    run.cpu = CpuMeter.percent(before, after, time.monotonic() - started)
    elapsed = time.monotonic() - started
    run.cpu["bench"] = 100 * (time.process_time() - own_before) / elapsed
    machine = 100 * (machine_busy_seconds() - machine_before) / elapsed
    run.cpu["other"] = max(0.0, machine - sum(run.cpu.values()))
    return run


async def stages(dsn: str, run: Run) -> None:
    """Per ticket.created event: its `time` -> the tickets outbox row's `sent_at` -> the
    webhooks inbox row's `processed_at` (the recorder's transaction) -> each arrival;
    and the rate of each stage, from the rows of the tickets and webhooks services."""
    if not run.creates:
        return
    conn = await asyncpg.connect(dsn)
    try:
        # Without webhooks the run does not wait for the recorder: wait for it here.
        for _ in range(40):
            events = await conn.fetch(
                "SELECT o.event_id::text AS event_id, o.sent_at, i.processed_at, "
                "(o.payload->>'time')::timestamptz AS time "
                "FROM tickets.outbox AS o LEFT JOIN webhooks.inbox AS i USING (event_id) "
                "WHERE o.routing_key = 'ticket.created' AND o.aggregate_id = ANY($1::text[])",
                [c.ticket_id for c in run.creates],
            )
            if len(events) == len(run.creates) and all(r["processed_at"] for r in events):
                break
            await asyncio.sleep(0.5)
        attempts = await conn.fetch(
            "SELECT attempt FROM webhooks.deliveries WHERE webhook_id = ANY($1::uuid[])",
            run.hook_ids,
        )
    finally:
        await conn.close()
    run.retried = sum(1 for r in attempts if r["attempt"] > 1)
    by_id = {r["event_id"]: r for r in events if r["sent_at"] and r["processed_at"]}
    out: dict[str, list[float]] = {"published": [], "recorded": [], "sent": []}
    for r in by_id.values():
        out["published"].append((r["sent_at"] - r["time"]).total_seconds())
        out["recorded"].append((r["processed_at"] - r["sent_at"]).total_seconds())
    for a in run.created():
        row = by_id.get(a.got.webhook_id)
        if row is not None:
            out["sent"].append(a.got.at + WALL_MINUS_MONO - row["processed_at"].timestamp())
    run.stages = out
    for name, column in (("published/s", "sent_at"), ("recorded/s", "processed_at")):
        stamps = sorted(r[column].timestamp() for r in by_id.values())
        if len(stamps) > 1 and stamps[-1] > stamps[0]:
            run.rates[name] = (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def delete_webhooks(api: Api, run: Run) -> None:
    for hook_id in run.hook_ids:
        with contextlib.suppress(RuntimeError):
            await api.call("DELETE", f"/webhooks/{hook_id}")


# --- the bare baseline -------------------------------------------------------------------


@dataclass
class Direct:
    label: str
    posts: int
    clients: int
    latencies: list[float]
    arrivals: list[float]
    cpu: dict[str, float]
    bad: int

    def rate(self) -> float:
        return (len(self.arrivals) - 1) / (max(self.arrivals) - min(self.arrivals))


async def direct(
    kind: str,
    receiver: Receiver,
    meter: CpuMeter,
    source: Run,
    *,
    posts: int,
    clients: int,
    seconds: float,
) -> Direct:
    """POST the bodies and headers `source` received, again, straight to the receiver:
    at least `posts` of them and for at least `seconds`."""
    await settle(meter)
    prefix = f"/direct/{secrets.token_hex(3)}/"
    bodies = [(a.got.body, a.got.headers) for a in source.arrivals if a.hook == 0]
    work = itertools.count()
    latencies: list[float] = []
    keep = ("content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature")
    until = time.monotonic() + seconds

    async def send(post: Any) -> None:
        for i in work:
            if i >= posts and time.monotonic() > until:
                return
            body, headers = bodies[i % len(bodies)]
            started = time.monotonic()
            await post(f"{receiver.url}{prefix}{i}", body, {k: headers[k] for k in keep})
            latencies.append(time.monotonic() - started)

    before, machine_before = meter.snapshot(), machine_busy_seconds()
    own_before, started = time.process_time(), time.monotonic()
    if kind == "aiohttp":
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(url: str, body: bytes, headers: dict[str, str]) -> None:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()

            await asyncio.gather(*(send(post) for _ in range(clients)))
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

            async def post(url: str, body: bytes, headers: dict[str, str]) -> None:
                (await client.post(url, content=body, headers=headers)).raise_for_status()

            await asyncio.gather(*(send(post) for _ in range(clients)))
    wall = time.monotonic() - started
    cpu = CpuMeter.percent(before, meter.snapshot(), wall)
    cpu["bench"] = 100 * (time.process_time() - own_before) / wall
    machine = 100 * (machine_busy_seconds() - machine_before) / wall
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    got = [r for r in receiver.received if r.path.startswith(prefix)]
    bad = 0
    for r in got:
        try:
            Webhook(source.secrets[0]).verify(r.body, r.headers)
        except WebhookVerificationError:
            bad += 1
    return Direct(
        f"direct {kind} POST to the receiver",
        len(latencies),
        clients,
        latencies,
        [r.at for r in got],
        cpu,
        bad,
    )


# --- the report --------------------------------------------------------------------------


def facts(args: argparse.Namespace) -> list[str]:
    commit = subprocess.run(  # noqa: S603 (our own arguments)
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607 (git on PATH)
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(  # noqa: S603 (our own arguments)
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k.startswith("BUGTRACKER_WEBHOOKS_")}
    env.pop("BUGTRACKER_WEBHOOKS_SECRET_KEY", None)
    return [
        f"# Webhooks: deliveries, latency, baseline ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`bench/webhooks_bench.py --tickets {args.tickets} --max-deliveries "
        f"{args.max_deliveries} --clients {args.clients} "
        f"--fanout {args.fanout} --pace-ms {args.pace_ms} --paced-seconds "
        f"{args.paced_seconds:g}` against `make up` (rate limit off), commit {commit}"
        f"{' (with local changes)' if dirty else ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Webhooks settings: the service's defaults "
        "(poll 1 s, 4 connections per host, 64 deliveries in flight, prefetch 20, "
        "one subject at a time)"
        f"{'; overridden: ' + ', '.join(sorted(env)) if env else ''}. The receiver "
        "(bugtracker_testkit.receiver, answers 204) and the load run in this one process "
        "(`bench` CPU column).",
        "",
    ]


def report_text(runs: list[Run], directs: list[Direct], args: argparse.Namespace) -> str:
    lines = facts(args)
    lines += [
        "## 1. Deliveries per second to a local receiver",
        "",
        "Tickets created through the gateway by `clients` concurrent clients (closed loop). "
        "`create/s`: tickets / (first request sent -> last response). `delivered/s`: "
        "deliveries / (first -> last arrival at the receiver). `total s`: first request -> "
        "last arrival. `sig bad`: `Webhook(secret).verify` failures; `dup`: the same "
        "`webhook-id` twice on one webhook; `missing`: (webhook, ticket) pairs whose "
        "`ticket.created` never came; `other`: other events delivered. The direct rows are "
        "the bare baseline: the same bodies and headers POSTed straight to the receiver.",
        "",
        "| run | webhooks | tickets | clients | create/s | deliveries | delivered/s "
        "| total s | sig bad | dup | missing | other | retried |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if run.pace_ms is not None:
            continue
        delivered = run.delivery_rate() if run.webhooks else math.nan
        lines.append(
            f"| {run.label}{' (deadline hit)' if run.timed_out else ''} | {run.webhooks} "
            f"| {len(run.creates)} | {run.clients} | {run.create_rate():.0f} "
            f"| {len(run.arrivals)} | {rate(delivered)} "
            f"| {run.wall:.1f} | {run.bad_signatures()} | {run.duplicates()} "
            f"| {run.missing()} | {run.other_events()} | {run.retried} |"
        )
    for d in directs:
        lines.append(
            f"| {d.label} | - | - | {d.clients} | - | {len(d.arrivals)} | {d.rate():.0f} "
            f"| {max(d.arrivals) - min(d.arrivals):.1f} | {d.bad} | - | {d.posts - len(d.arrivals)}"
            " | - | - |"
        )
    lines += [
        "",
        "## 2. Event -> delivery latency",
        "",
        "Per `ticket.created` delivery: from the create request's response (as the client "
        "saw it) to its arrival at the receiver, and from the event's own `time` (set by "
        "the tickets service while handling the request, before its commit) to the "
        "arrival. ms. The direct rows: one POST's round trip.",
        "",
        "| run | rate | deliveries | resp->arrival p50 | p99 | max | event time->arrival p50 "
        "| p99 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if not run.webhooks:
            continue
        resp, evt = run.from_response(), run.from_event_time()
        load = (
            f"1 per {run.pace_ms:g} ms (open loop)"
            if run.pace_ms is not None
            else f"saturating, {run.clients} clients"
        )
        lines.append(
            f"| {run.label} | {load} | {len(resp)} | {ms(pct(resp, 50))} | {ms(pct(resp, 99))} "
            f"| {ms(max(resp, default=float('nan')))} | {ms(pct(evt, 50))} "
            f"| {ms(pct(evt, 99))} | {ms(max(evt, default=float('nan')))} |"
        )
    for d in directs:
        lines.append(
            f"| {d.label} | saturating, {d.clients} clients | {len(d.latencies)} "
            f"| {ms(pct(d.latencies, 50))} | {ms(pct(d.latencies, 99))} "
            f"| {ms(max(d.latencies))} | - | - | - |"
        )
    if any(run.stages for run in runs):
        lines += [
            "",
            "## 3. Where the time goes",
            "",
            "Per `ticket.created` event, from the services' own rows (ms): `relay` = the "
            "event's `time` -> its `tickets.outbox.sent_at` (the request's commit, then the "
            "outbox relay's claim, publish and confirm); `queue` = `sent_at` -> "
            "`webhooks.inbox.processed_at` (RabbitMQ, then waiting in the `webhooks.events` "
            "queue, consumed up to 20 at a time, one per ticket, until the recorder's "
            "transaction starts); `dispatch` = `processed_at` -> arrival, per delivery (the "
            "recording's commit, the dispatcher's wake-up, claim, signing and the POST, at "
            "most 4 at once per host). The rates are events per second through each stage "
            "(first to last timestamp): `create/s` at the client, `published/s` by the "
            "tickets relay, `recorded/s` by the webhooks recorder, `delivered/s` at the "
            "receiver (deliveries, so x webhooks).",
            "",
            "| run | events | relay p50 | p99 | queue p50 | p99 | dispatch p50 | p99 "
            "| create/s | published/s | recorded/s | delivered/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in runs:
            if not run.stages:
                continue
            s = run.stages
            delivered = run.delivery_rate() if run.webhooks else float("nan")
            lines.append(
                f"| {run.label} | {len(s['published'])} | {ms(pct(s['published'], 50))} "
                f"| {ms(pct(s['published'], 99))} | {ms(pct(s['recorded'], 50))} "
                f"| {ms(pct(s['recorded'], 99))} | {ms(pct(s['sent'], 50))} "
                f"| {ms(pct(s['sent'], 99))} | {rate(run.create_rate())} "
                f"| {rate(run.rates.get('published/s', math.nan))} "
                f"| {rate(run.rates.get('recorded/s', math.nan))} | {rate(delivered)} |"
            )
    names = [*PORTS, "bench", "other"]
    lines += [
        "",
        "## 4. CPU during each run",
        "",
        "% of one core (up to 200 on two cores) from the first request to the last "
        "arrival: `gw` gateway, `proj` projects, `tick` tickets, `notif` notifications, "
        "`hooks` webhooks, `pg` PostgreSQL with its backends, `mq` RabbitMQ, `bench` this "
        "process (clients and receiver), `other` the rest of the machine (other work on "
        "the shared machine: when high, the run is noisy). `hooks ms/event`, "
        "`hooks ms/delivery`: the webhooks process's CPU time over the run divided by the "
        "tickets created, by the deliveries made.",
        "",
        "| run | " + " | ".join(names) + " | sum | hooks ms/event | hooks ms/delivery |",
        "|---|" + "---:|" * (len(names) + 3),
    ]
    rows = [(r.label, r.cpu, r.wall, len(r.creates), len(r.arrivals)) for r in runs]
    rows += [(d.label, d.cpu, math.nan, 0, 0) for d in directs]
    for label, cpu, wall, events, deliveries in rows:
        cells = [f"{cpu.get(n, float('nan')):.0f}" for n in names]
        total = sum(v for v in cpu.values() if not math.isnan(v))
        hooks = cpu.get("hooks", math.nan) / 100 * wall * 1000
        per_event = f"{hooks / events:.1f}" if events else "-"
        per_delivery = f"{hooks / deliveries:.1f}" if deliveries else "-"
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {total:.0f} | {per_event} | {per_delivery} |"
        )
    return "\n".join([*lines, ""])


def results_path(label: str) -> Path:
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{label}"
    path = RESULTS / f"{stem}.md"
    n = 2
    while path.exists():
        path = RESULTS / f"{stem}-{n}.md"
        n += 1
    return path


# --- main --------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> str:
    meter = CpuMeter(listeners(PORTS))
    fanouts = [int(part) for part in args.fanout.split(",") if part.strip()]
    paces = [float(part) for part in args.pace_ms.split(",") if part.strip()]
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.clients * 4)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as http,
        receiving() as receiver,
    ):
        api = Api(http, f"{args.gateway}/api/v1")
        await api.sign_in()
        dsn = (
            None
            if args.no_db
            else Postgres(REPO / ".data" / "postgres", PORTS["pg"]).superuser_dsn("bugtracker")
        )
        runs: list[Run] = []
        plan = [
            Run("warm-up", 1, 20, args.clients, None),
            Run("no webhook (event source alone)", 0, args.tickets, args.clients, None),
            *(
                Run(
                    f"{w} webhook{'s' * (w > 1)}",
                    w,
                    min(args.tickets, args.max_deliveries // w),
                    args.clients,
                    None,
                )
                for w in fanouts
            ),
            *(
                Run(f"paced {p:g} ms, 1 webhook", 1, round(args.paced_seconds * 1000 / p), None, p)
                for p in paces
            ),
        ]
        for run in plan:
            print(f"run: {run.label} ...", flush=True)
            await measure(api, receiver, meter, run, deadline=args.deadline)
            if dsn is not None:
                try:
                    await stages(dsn, run)
                except (OSError, asyncpg.PostgresError) as exc:
                    print(f"  (no stages: {exc})")
                    dsn = None
            await delete_webhooks(api, run)
            if run.label != "warm-up":
                runs.append(run)
            print(
                f"  {len(run.creates)} tickets ({run.create_errors} errors), "
                f"{len(run.arrivals)} deliveries in {run.wall:.1f} s",
                flush=True,
            )
        source = next(r for r in runs if r.webhooks and r.pace_ms is None)
        posts = max(len(r.arrivals) for r in runs)
        directs = []
        for kind in ("aiohttp", "httpx"):
            print(f"run: direct {kind} ...", flush=True)
            directs.append(
                await direct(
                    kind,
                    receiver,
                    meter,
                    source,
                    posts=posts,
                    clients=args.clients,
                    seconds=args.direct_seconds,
                )
            )
    return report_text(runs, directs, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--tickets", type=int, default=300, help="tickets per saturating run")
    parser.add_argument(
        "--max-deliveries",
        type=int,
        default=1000,
        help="a fan-out run creates at most this many / webhooks tickets (to fit the deadline)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent create clients")
    parser.add_argument("--fanout", default="1,5", help="webhooks per project, comma-separated")
    parser.add_argument(
        "--pace-ms", default="50,100", help="the paced runs' intervals, comma-separated"
    )
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="each paced run's length")
    parser.add_argument(
        "--deadline", type=float, default=30.0, help="seconds a run may take in all"
    )
    parser.add_argument(
        "--direct-seconds", type=float, default=3.0, help="the least a baseline run takes"
    )
    parser.add_argument("--no-db", action="store_true", help="skip the per-stage breakdown")
    parser.add_argument("--label", default="webhooks")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    text = asyncio.run(bench(args))
    print(text)
    if not args.no_save:
        out = results_path(args.label)
        out.write_text(text, encoding="utf-8")
        print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
