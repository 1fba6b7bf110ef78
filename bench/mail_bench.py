"""E-mail notifications against a running `make up`: mails per second, latency, where it goes.

    uv run python bench/mail_bench.py [--tickets 400] [--clients 4] [--members 8]

A throw-away owner makes a project with `--members` throw-away members (developers) and
creates tickets through the gateway, each assigned to a member in turn: every ticket's
`ticket.assigned` makes one in-app notification and one immediate mail for its assignee
(docs/adr/0044). The mails go to `make up`'s SMTP sink (127.0.0.1:1025), which keeps each
as an `.eml` file under `.data/mail/` named `<UTC time it got the message>-<n>.eml`.
The script watches that directory and matches each new file to the run by its subject's
ticket key. Runs:

- saturating: `--tickets` tickets from `--clients` concurrent clients (closed loop);
- paced: one ticket every `--pace-ms` (open loop, `--paced-seconds` each): the latency
  below saturation;
- the source without mail: the saturating run again with e-mail turned off for every
  member (`PUT /api/v1/users/me/notification-preferences {"email": "off"}`): the ticket
  and notification rates the system reaches when it sends nothing;
- the bare baseline: the saturating run's messages sent again straight to the sink by
  aiosmtplib (new Message-IDs, an `X-Bench-Direct` header), one connection per message
  like the service's sender (`--clients` at once, and 10 at once like its batch), and one
  kept connection per client: what SMTP to the sink can do.

It reports mails per second at the sink (first to last arrival), notifications per
second (the rows of `notifications.notifications`, first to last `created_at`), latency
per mail from the create response and from the notification's `created_at` to the
sink's arrival stamp (the file name), per-stage times from the services' rows (read as
the PostgreSQL superuser over `make up`'s unix socket, so as root; `--no-db` skips them),
CPU per process, and correctness: every ticket's mail exactly once (by Message-ID and by
ticket key), to its assignee, with the subject `[KEY-n] Title`. It measures, it does not
assert; the output is written under bench/results/ like bench/run.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import parseaddr
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import asyncpg
from bugtracker_devstack.postgres import Postgres
from suite.cpu import CpuMeter, listeners, machine_busy_seconds

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MAIL_DIR = REPO / ".data" / "mail"
PASSWORD = "copper-heron-violin-31-maple"  # noqa: S105 (throw-away bench accounts)
PORTS = {
    "gw": 8000,
    "auth": 8001,
    "proj": 8002,
    "tick": 8003,
    "notif": 8004,
    "hooks": 8005,
    "pg": 5432,
    "mq": 5672,
    "sink": 1025,
}
SENDER_BATCH = 10  # MailSettings.batch: the sender sends up to 10 mails at once


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


def span_rate(stamps: list[float]) -> float:
    """Items per second from the first to the last stamp (n - 1 intervals)."""
    if len(stamps) < 2 or max(stamps) <= min(stamps):  # noqa: PLR2004
        return float("nan")
    return (len(stamps) - 1) / (max(stamps) - min(stamps))


# --- the sink's directory ----------------------------------------------------------------


@dataclass
class Kept:
    """One `.eml` file: when the sink got it (its name), when it was complete (mtime)."""

    name: str
    got: float  # wall clock, from the name
    written: float  # wall clock, the file's mtime (the sink's last write, before its fsync)
    to: str
    subject: str
    message_id: str
    direct: str
    path: Path


class MailWatch:
    """The `.eml` files that appeared in the sink's directory since the watch began."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: set[str] = set(self._names())
        self.kept: list[Kept] = []
        self._parser = BytesHeaderParser()

    def _names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return [e.name for e in os.scandir(self.directory) if e.name.endswith(".eml")]

    def poll(self) -> int:
        """Read the new files' headers; how many there were."""
        new = sorted(set(self._names()) - self.seen)
        for name in new:
            self.seen.add(name)
            path = self.directory / name
            with contextlib.suppress(OSError, ValueError):
                stat = path.stat()
                with path.open("rb") as handle:
                    headers = self._parser.parse(handle)
                got = datetime.strptime(name[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
                self.kept.append(
                    Kept(
                        name=name,
                        got=got.timestamp(),
                        written=stat.st_mtime,
                        to=parseaddr(str(headers.get("To", "")))[1].lower(),
                        subject=" ".join(
                            str(make_header(decode_header(str(headers.get("Subject", ""))))).split()
                        ),
                        message_id=str(headers.get("Message-ID", "")).strip(),
                        direct=str(headers.get("X-Bench-Direct", "")),
                        path=path,
                    )
                )
        return len(new)


# --- the system -------------------------------------------------------------------------


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    token: str = ""

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.http.request(
            method, f"{self.base}{path}", json=body, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= HTTPStatus.MULTIPLE_CHOICES:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text else None

    async def account(self, email: str, name: str) -> tuple[str, str]:
        """Register and log in; (user id, access token)."""
        user = await self.call(
            "POST", "/auth/register", {"email": email, "password": PASSWORD, "display_name": name}
        )
        login = await self.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
        return str(user["id"]), str(login["access_token"])


@dataclass
class Member:
    user_id: str
    email: str
    token: str


@dataclass
class Setup:
    project: str  # key
    owner: Member
    members: list[Member]


async def set_up(api: Api, members: int, watch: MailWatch) -> Setup:
    tag = secrets.token_hex(3)
    owner_email = f"bench-mail-{tag}-owner@example.com"
    owner_id, api.token = await api.account(owner_email, "Bench mail owner")
    key = f"ML{secrets.randbelow(10**6)}"
    await api.call("POST", "/projects", {"key": key, "name": f"Mail bench {key}"})
    people = []
    for i in range(members):
        email = f"bench-mail-{tag}-{i}@example.com"
        user_id, token = await api.account(email, f"Bench member {i}")
        await api.call(
            "POST", f"/projects/{key}/members", {"user_id": user_id, "role": "developer"}
        )
        people.append(Member(user_id, email, token))
    # The tickets service learns of the members from `project.member_added` events: wait
    # until it lets the last one be assigned (that ticket's mail is part of the warm-up).
    for _ in range(100):
        try:
            await api.call(
                "POST",
                f"/projects/{key}/tickets",
                {"title": "mail bench probe", "assignee_id": people[-1].user_id},
            )
            break
        except RuntimeError:
            await asyncio.sleep(0.2)
    # The members' `project.member_added` mails: wait for them, so they are not counted.
    addresses = {m.email for m in people}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        watch.poll()
        if len({k.to for k in watch.kept if k.to in addresses}) >= len(addresses):
            break
        await asyncio.sleep(0.2)
    return Setup(key, Member(owner_id, owner_email, api.token), people)


# --- one run -----------------------------------------------------------------------------


@dataclass
class Create:
    sent: float  # wall clock
    answered: float
    ticket_id: str
    key: str
    title: str
    assignee: str  # e-mail


@dataclass
class Run:
    label: str
    tickets: int
    clients: int | None
    pace_ms: float | None
    mail: bool = True
    creates: list[Create] = field(default_factory=list)
    create_errors: int = 0
    mails: list[Kept] = field(default_factory=list)
    strays: int = 0  # new files of no run (another source)
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    elapsed: float = 0.0  # the CPU columns' span: start -> the end of the wait
    timed_out: bool = False
    # from the database
    notifications: list[float] = field(default_factory=list)  # created_at, wall clock
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # mail id -> row

    def by_key(self) -> dict[str, Create]:
        return {c.key: c for c in self.creates}

    def key_of(self, kept: Kept) -> str | None:
        if kept.subject.startswith("[") and "]" in kept.subject:
            return kept.subject[1 : kept.subject.index("]")]
        return None

    # ---- correctness
    def duplicate_ids(self) -> int:
        seen = Counter(k.message_id for k in self.mails)
        return sum(n - 1 for n in seen.values())

    def duplicate_keys(self) -> int:
        seen = Counter(self.key_of(k) for k in self.mails)
        return sum(n - 1 for n in seen.values())

    def missing(self) -> int:
        got = {self.key_of(k) for k in self.mails}
        return sum(c.key not in got for c in self.creates)

    def wrong_recipient(self) -> int:
        creates = self.by_key()
        return sum(
            1
            for k in self.mails
            if (c := creates.get(self.key_of(k) or "")) is None or k.to != c.assignee.lower()
        )

    def bad_subject(self) -> int:
        creates = self.by_key()
        return sum(
            1
            for k in self.mails
            if (c := creates.get(self.key_of(k) or "")) is None
            or k.subject != f"[{c.key}] {c.title}"
        )

    # ---- rates
    def create_rate(self) -> float:
        if not self.creates:
            return float("nan")
        span = max(c.answered for c in self.creates) - min(c.sent for c in self.creates)
        return len(self.creates) / span

    def mail_rate(self) -> float:
        return span_rate([k.got for k in self.mails])

    def notification_rate(self) -> float:
        return span_rate(self.notifications)

    # ---- latency
    def from_response(self) -> list[float]:
        creates = self.by_key()
        out = []
        for k in self.mails:
            c = creates.get(self.key_of(k) or "")
            if c is not None:
                out.append(k.got - c.answered)
        return out

    def row_of(self, kept: Kept) -> dict[str, Any] | None:
        mail_id = kept.message_id.strip("<>").split("@", 1)[0]
        return self.rows.get(mail_id)

    def from_notification(self) -> list[float]:
        out = []
        for k in self.mails:
            row = self.row_of(k)
            if row is not None:
                out.append(k.got - row["created_at"].timestamp())
        return out


async def settle(meter: CpuMeter, *, below: float = 15.0, limit: float = 20.0) -> None:
    """Until the system's processes together use less than `below` % CPU (the previous
    run's leftovers worked off), at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await meter.busy(0.5) < below:
            return


async def create_tickets(api: Api, setup: Setup, run: Run, tag: str) -> None:
    path = f"/projects/{setup.project}/tickets"

    async def one(i: int) -> None:
        member = setup.members[i % len(setup.members)]
        title = f"Mail bench {tag} {i}"
        body = {
            "title": title,
            "description": "A ticket made by bench/mail_bench.py.",
            "assignee_id": member.user_id,
        }
        sent = time.time()
        try:
            ticket = await api.call("POST", path, body)
        except (RuntimeError, aiohttp.ClientError):
            run.create_errors += 1
            return
        run.creates.append(
            Create(sent, time.time(), str(ticket["id"]), str(ticket["key"]), title, member.email)
        )

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


async def count_notifications(dsn: str | None, run: Run) -> int:
    if dsn is None or not run.creates:
        return 0
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notifications.notifications "
                "WHERE ticket_id = ANY($1::uuid[])",
                [c.ticket_id for c in run.creates],
            )
        )
    finally:
        await conn.close()


async def measure(
    api: Api,
    setup: Setup,
    watch: MailWatch,
    meter: CpuMeter,
    run: Run,
    *,
    deadline: float,
    dsn: str | None,
) -> Run:
    await settle(meter)
    watch.poll()
    first_new = len(watch.kept)
    tag = secrets.token_hex(3)
    before, machine_before = meter.snapshot(), machine_busy_seconds()
    own_before = time.process_time()
    started = time.monotonic()
    creating = asyncio.create_task(create_tickets(api, setup, run, tag))
    while True:
        await asyncio.sleep(0.1)
        watch.poll()
        if creating.done():
            keys = {c.key for c in run.creates}
            if run.mail:
                got = {
                    k.subject[1 : k.subject.find("]")]
                    for k in watch.kept[first_new:]
                    if k.subject.startswith("[")
                }
                if keys <= got:
                    break
            elif await count_notifications(dsn, run) >= len(run.creates) or dsn is None:
                break
        if time.monotonic() - started > deadline:
            run.timed_out = True
            break
    if not creating.done():
        creating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await creating
    await asyncio.sleep(0.5)  # a late duplicate would arrive now
    watch.poll()
    elapsed = time.monotonic() - started
    after = meter.snapshot()
    keys = {c.key for c in run.creates}
    for k in watch.kept[first_new:]:
        if run.key_of(k) in keys:
            run.mails.append(k)
        elif not k.direct:
            run.strays += 1
    if run.creates:
        last = max([c.answered for c in run.creates] + [k.got for k in run.mails])
        run.wall = last - min(c.sent for c in run.creates)
    run.elapsed = elapsed
    run.cpu = CpuMeter.percent(before, after, elapsed)
    run.cpu["bench"] = 100 * (time.process_time() - own_before) / elapsed
    machine = 100 * (machine_busy_seconds() - machine_before) / elapsed
    run.cpu["other"] = max(0.0, machine - sum(run.cpu.values()))
    return run


async def read_rows(dsn: str, run: Run) -> None:
    """The run's notifications (their `created_at`) and mail rows, with the event's
    `time` and its `tickets.outbox.sent_at` (the relay published it)."""
    if not run.creates:
        return
    ids = [c.ticket_id for c in run.creates]
    conn = await asyncpg.connect(dsn)
    try:
        notes = await conn.fetch(
            "SELECT created_at FROM notifications.notifications "
            "WHERE ticket_id = ANY($1::uuid[]) AND type = 'ticket.assigned'",
            ids,
        )
        mails = await conn.fetch(
            "SELECT m.id::text AS id, m.created_at, m.sent_at, m.attempts, m.status, "
            "o.sent_at AS published, (o.payload->>'time')::timestamptz AS time "
            "FROM notifications.mails AS m LEFT JOIN tickets.outbox AS o USING (event_id) "
            "WHERE m.ticket_id = ANY($1::uuid[])",
            ids,
        )
    finally:
        await conn.close()
    run.notifications = [r["created_at"].timestamp() for r in notes]
    run.rows = {r["id"]: dict(r) for r in mails}


async def mail_switch(api: Api, setup: Setup, mode: str) -> None:
    for member in setup.members:
        await api.call(
            "PUT", "/users/me/notification-preferences", {"email": mode}, token=member.token
        )


# --- the bare baseline -------------------------------------------------------------------


@dataclass
class Direct:
    label: str
    clients: int
    sent: int
    latencies: list[float]
    mails: list[Kept]
    cpu: dict[str, float]
    wall: float

    def rate(self) -> float:
        return span_rate([k.got for k in self.mails])


def similar_messages(source: Run, tag: str) -> list[EmailMessage]:
    """The source run's messages as the service sent them (without the sink's trace
    headers), each with a new Message-ID and an `X-Bench-Direct` header."""
    out = []
    for i, kept in enumerate(source.mails):
        raw = kept.path.read_bytes()
        lines = raw.split(b"\r\n")
        while lines and lines[0].startswith((b"Return-Path:", b"Delivered-To:")):
            lines.pop(0)
        message = message_from_bytes(b"\r\n".join(lines), _class=EmailMessage, policy=SMTP_POLICY)
        del message["Message-ID"]
        message["Message-ID"] = f"<direct-{tag}-{i}@bench.invalid>"
        message["X-Bench-Direct"] = tag
        out.append(message)
    return out


async def direct(
    label: str,
    watch: MailWatch,
    meter: CpuMeter,
    source: Run,
    *,
    clients: int,
    reuse: bool,
    deadline: float,
) -> Direct:
    """Send the source run's messages again straight to the sink with aiosmtplib,
    `clients` at once: a new connection per message (as the service's sender does), or
    one kept connection per client."""
    await settle(meter)
    tag = secrets.token_hex(3)
    messages = similar_messages(source, tag)
    work = iter(messages)
    latencies: list[float] = []
    watch.poll()
    first_new = len(watch.kept)
    before, machine_before = meter.snapshot(), machine_busy_seconds()
    own_before, started = time.process_time(), time.monotonic()

    async def per_message() -> None:
        for message in work:
            t0 = time.monotonic()
            await aiosmtplib.send(message, hostname="127.0.0.1", port=PORTS["sink"], timeout=30)
            latencies.append(time.monotonic() - t0)

    async def kept_connection() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=PORTS["sink"], timeout=30)
        async with client:
            for message in work:
                t0 = time.monotonic()
                await client.send_message(message)
                latencies.append(time.monotonic() - t0)

    await asyncio.gather(*((kept_connection if reuse else per_message)() for _ in range(clients)))
    while time.monotonic() - started < deadline:
        watch.poll()
        if sum(1 for k in watch.kept[first_new:] if k.direct == tag) >= len(messages):
            break
        await asyncio.sleep(0.05)
    wall = time.monotonic() - started
    cpu = CpuMeter.percent(before, meter.snapshot(), wall)
    cpu["bench"] = 100 * (time.process_time() - own_before) / wall
    machine = 100 * (machine_busy_seconds() - machine_before) / wall
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    got = [k for k in watch.kept[first_new:] if k.direct == tag]
    return Direct(label, clients, len(messages), latencies, got, cpu, wall)


# --- the report --------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(  # noqa: S603 (our own arguments)
        ["git", "-C", str(REPO), *args],  # noqa: S607 (git on PATH)
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def facts(args: argparse.Namespace) -> list[str]:
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    env = sorted(
        k
        for k in os.environ
        if k.startswith(("BUGTRACKER_NOTIFICATIONS_", "BUGTRACKER_SMTP_"))
        and "KEY" not in k
        and "PASSWORD" not in k
    )
    return [
        "# E-mail notifications: mails/s, latency, baseline "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`bench/mail_bench.py --tickets {args.tickets} --clients {args.clients} --members "
        f"{args.members} --pace-ms {args.pace_ms} --paced-seconds {args.paced_seconds:g}` "
        f"against `make up` (rate limit off), commit {commit}"
        f"{' (with local changes)' if dirty else ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Mail settings: the service's defaults (sender "
        "poll 1 s but woken by every handled event that made a mail, batch of 10 sent at "
        "once, one SMTP connection per message, one auth lookup per batch) to `make up`'s "
        "sink (aiosmtpd, one `.eml` file per message, written and fsynced)"
        f"{'; overridden: ' + ', '.join(env) if env else ''}. Every ticket is created by "
        "the project's owner and assigned to one of its members in turn: one "
        "`ticket.assigned` notification and one mail per ticket. The clients and the "
        "directory watcher run in this one process (`bench` CPU column).",
        "",
    ]


def load_of(run: Run) -> str:
    if run.pace_ms is not None:
        return f"1 per {run.pace_ms:g} ms (open loop)"
    return f"saturating, {run.clients} clients"


def report_text(runs: list[Run], directs: list[Direct], args: argparse.Namespace) -> str:  # noqa: PLR0912
    lines = facts(args)
    lines += [
        "## 1. Mails per second to the local sink",
        "",
        "`create/s`: tickets / (first request sent -> last response). `notif/s`: the run's "
        "rows in `notifications.notifications` / (first -> last `created_at`) — the in-app "
        "notifications, written by the event handler in the transaction that also writes "
        "the mail rows. `mails/s`: the run's `.eml` files / (first -> last arrival, the "
        "time in the sink's file name). `total s`: first request -> last arrival. The "
        "direct rows are the bare baseline: the same messages sent straight to the sink.",
        "",
        "| run | load | tickets | notifications | mails | create/s | notif/s | mails/s | total s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.label}{' (deadline hit)' if run.timed_out else ''} | {load_of(run)} "
            f"| {len(run.creates)} | {len(run.notifications) if run.notifications else '-'} "
            f"| {len(run.mails)} | {rate(run.create_rate())} | {rate(run.notification_rate())} "
            f"| {rate(run.mail_rate()) if run.mail else '-'} | {run.wall:.1f} |"
        )
    for d in directs:
        stamps = [k.got for k in d.mails]
        total = max(stamps) - min(stamps) if stamps else math.nan
        lines.append(
            f"| {d.label} | {d.clients} at once | - | - | {len(d.mails)} | - | - "
            f"| {rate(d.rate())} | {total:.1f} |"
        )
    lines += [
        "",
        "## 2. Correctness",
        "",
        "Per run, over the `.eml` files whose subject names one of the run's tickets: "
        "`dup id` the same Message-ID twice, `dup key` two mails for one ticket, `missing` "
        "tickets without a mail, `wrong to` a mail not to the ticket's assignee, `bad "
        "subject` a subject other than `[KEY-n] Title`, `stray` new files of no run "
        "(another sender), `errors` failed create requests, `status` the mail rows' "
        "statuses and `retried` rows sent in more than one attempt.",
        "",
        "| run | tickets | mails | dup id | dup key | missing | wrong to | bad subject "
        "| stray | errors | status | retried |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in runs:
        statuses = Counter(str(r["status"]) for r in run.rows.values())
        status = ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) or "-"
        retried = sum(1 for r in run.rows.values() if r["attempts"] > 1)
        missing = run.missing() if run.mail else "- (e-mail off)"
        lines.append(
            f"| {run.label} | {len(run.creates)} | {len(run.mails)} | {run.duplicate_ids()} "
            f"| {run.duplicate_keys()} | {missing} | {run.wrong_recipient()} "
            f"| {run.bad_subject()} | {run.strays} | {run.create_errors} | {status} "
            f"| {retried} |"
        )
    for d in directs:
        ids = Counter(k.message_id for k in d.mails)
        lines.append(
            f"| {d.label} | - | {len(d.mails)} | {sum(n - 1 for n in ids.values())} | - "
            f"| {d.sent - len(d.mails)} | - | - | - | - | - | - |"
        )
    lines += [
        "",
        "## 3. Notification -> mail latency",
        "",
        "Per mail (ms): `resp->mail` from the create request's response (as the client saw "
        "it) to the sink's arrival stamp (the file name: the sink got the whole message); "
        "`notif->mail` from the notification's `created_at` (the event handler's clock; "
        "the mail row has the same `created_at`) to that stamp. The direct rows: one "
        "aiosmtplib send's round trip (connect, EHLO, MAIL, RCPT, DATA, QUIT when one "
        "connection per message).",
        "",
        "| run | load | mails | resp->mail p50 | p99 | max | notif->mail p50 | p99 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if not run.mail:
            continue
        resp, note = run.from_response(), run.from_notification()
        lines.append(
            f"| {run.label} | {load_of(run)} | {len(resp)} | {ms(pct(resp, 50))} "
            f"| {ms(pct(resp, 99))} | {ms(max(resp, default=math.nan))} | {ms(pct(note, 50))} "
            f"| {ms(pct(note, 99))} | {ms(max(note, default=math.nan))} |"
        )
    for d in directs:
        lines.append(
            f"| {d.label} | {d.clients} at once | {len(d.latencies)} "
            f"| {ms(pct(d.latencies, 50))} | {ms(pct(d.latencies, 99))} "
            f"| {ms(max(d.latencies, default=math.nan))} | - | - | - |"
        )
    if any(run.rows for run in runs):
        lines += [
            "",
            "## 4. Where the time goes",
            "",
            "Per mail, from the services' rows and the sink's files (ms): `relay` = the "
            "`ticket.assigned` event's `time` (the tickets service, in the request) -> its "
            "`tickets.outbox.sent_at` (committed, claimed, published and confirmed by the "
            "outbox relay); `handle` = `sent_at` -> the notification's `created_at` "
            "(RabbitMQ, the notifications consumer's queue, the handler's start); `send` = "
            "`created_at` -> the sink's arrival stamp (the handler's commit, the sender's "
            "wake-up, claim, auth lookup, former-member check, composing, SMTP connect and "
            "dialogue); `write` = arrival stamp -> the file's mtime (the sink writing the "
            "file; its fsync comes after the mtime, before its 250); `record` = arrival stamp -> "
            "`mails.sent_at` (the sink's 250, QUIT, then the sender records the outcome).",
            "",
            "| run | mails | relay p50 | p99 | handle p50 | p99 | send p50 | p99 | write p50 "
            "| p99 | record p50 | p99 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in runs:
            if not run.rows or not run.mail:
                continue
            stage: dict[str, list[float]] = {
                k: [] for k in ("relay", "handle", "send", "write", "record")
            }
            for k in run.mails:
                row = run.row_of(k)
                if row is None:
                    continue
                created = row["created_at"].timestamp()
                if row["time"] is not None and row["published"] is not None:
                    stage["relay"].append((row["published"] - row["time"]).total_seconds())
                    stage["handle"].append(created - row["published"].timestamp())
                stage["send"].append(k.got - created)
                stage["write"].append(k.written - k.got)
                if row["sent_at"] is not None:
                    stage["record"].append(row["sent_at"].timestamp() - k.got)
            cells = " | ".join(f"{ms(pct(v, 50))} | {ms(pct(v, 99))}" for v in stage.values())
            lines.append(f"| {run.label} | {len(stage['send'])} | {cells} |")
    names = [*PORTS, "bench", "other"]
    lines += [
        "",
        "## 5. CPU during each run",
        "",
        "% of one core (up to 200 on two cores) from the first request to the last "
        "arrival: `gw` gateway, `auth`, `proj` projects, `tick` tickets, `notif` "
        "notifications (consumer, handler and mail sender share its one process), `hooks` "
        "webhooks (it consumes the ticket events too), `pg` "
        "PostgreSQL with its backends, `mq` RabbitMQ, `sink` the SMTP sink, `bench` this "
        "process, `other` the rest of the machine (when high, the run is noisy). `notif "
        "ms/mail`, `sink ms/mail`: that process's CPU time over the run / the mails that "
        "arrived (for the run without mail: `notif` per ticket).",
        "",
        "| run | " + " | ".join(names) + " | sum | notif ms/mail | sink ms/mail |",
        "|---|" + "---:|" * (len(names) + 3),
    ]
    rows = [(r.label, r.cpu, r.elapsed, len(r.mails) or len(r.creates)) for r in runs]
    rows += [
        (
            d.label,
            d.cpu,
            d.wall,
            len(d.mails),
        )
        for d in directs
    ]
    for label, cpu, wall, count in rows:
        cells = [f"{cpu.get(n, math.nan):.0f}" for n in names]
        total = sum(v for v in cpu.values() if not math.isnan(v))
        notif = cpu.get("notif", math.nan) / 100 * wall * 1000
        sink = cpu.get("sink", math.nan) / 100 * wall * 1000
        per_notif = f"{notif / count:.1f}" if count else "-"
        per_sink = f"{sink / count:.1f}" if count else "-"
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {total:.0f} | {per_notif} | {per_sink} |"
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
    missing = sorted(set(PORTS) - set(meter.processes))
    if missing:
        print(f"(no process found listening for: {', '.join(missing)})")
    paces = [float(part) for part in args.pace_ms.split(",") if part.strip()]
    watch = MailWatch(args.mail_dir)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=args.clients * 4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        api = Api(http, f"{args.gateway}/api/v1")
        async with http.get(f"{args.gateway}/health") as response:
            if response.status != HTTPStatus.OK:
                raise SystemExit(f"the gateway answers {response.status}: is `make up` running?")
        print(f"set-up: an owner, {args.members} members, a project ...", flush=True)
        setup = await set_up(api, args.members, watch)
        dsn = (
            None
            if args.no_db
            else Postgres(REPO / ".data" / "postgres", PORTS["pg"]).superuser_dsn("bugtracker")
        )
        plan = [
            Run("warm-up", 20, args.clients, None),
            Run("mail on", args.tickets, args.clients, None),
            *(Run(f"paced {p:g} ms", round(args.paced_seconds * 1000 / p), None, p) for p in paces),
            Run("mail off (source alone)", args.tickets, args.clients, None, mail=False),
        ]
        runs: list[Run] = []
        for run in plan:
            if not run.mail:
                await mail_switch(api, setup, "off")
            print(f"run: {run.label} ...", flush=True)
            await measure(api, setup, watch, meter, run, deadline=args.deadline, dsn=dsn)
            if dsn is not None:
                try:
                    await read_rows(dsn, run)
                except (OSError, asyncpg.PostgresError) as exc:
                    print(f"  (no database rows: {exc})")
                    dsn = None
            if run.label != "warm-up":
                runs.append(run)
            print(
                f"  {len(run.creates)} tickets ({run.create_errors} errors), "
                f"{len(run.mails)} mails in {run.wall:.1f} s",
                flush=True,
            )
        source = next(r for r in runs if r.mail and r.pace_ms is None)
        directs = []
        if source.mails:
            for label, clients, reuse in (
                (
                    f"direct aiosmtplib, a connection per message, {args.clients} at once",
                    args.clients,
                    False,
                ),
                (
                    f"direct aiosmtplib, a connection per message, {SENDER_BATCH} at once",
                    SENDER_BATCH,
                    False,
                ),
                (f"direct aiosmtplib, {args.clients} kept connections", args.clients, True),
            ):
                print(f"run: {label} ...", flush=True)
                directs.append(
                    await direct(
                        label,
                        watch,
                        meter,
                        source,
                        clients=clients,
                        reuse=reuse,
                        deadline=args.deadline,
                    )
                )
    return report_text(runs, directs, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--mail-dir", type=Path, default=MAIL_DIR, help="the sink's directory")
    parser.add_argument("--tickets", type=int, default=400, help="tickets per saturating run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent create clients")
    parser.add_argument("--members", type=int, default=8, help="members (mail recipients)")
    parser.add_argument(
        "--pace-ms", default="100", help="the paced runs' intervals, comma-separated"
    )
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="each paced run's length")
    parser.add_argument(
        "--deadline", type=float, default=90.0, help="seconds a run may take in all"
    )
    parser.add_argument("--no-db", action="store_true", help="skip the rows of the database")
    parser.add_argument("--label", default="mail")
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
