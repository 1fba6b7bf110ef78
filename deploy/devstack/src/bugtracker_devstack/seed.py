"""Fill a project with many tickets for benchmarks and manual trials (`make seed`).

Works on the PostgreSQL of a running `make up` (through its private unix socket, as the
superuser) and writes rows the way the services would: the project and its owner in the
projects schema, the tickets with gapless keys and the project's counter in the tickets
schema. Tickets are written with COPY, so a million take minutes, not hours.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

WORDS = [
    "login",
    "crash",
    "save",
    "export",
    "import",
    "search",
    "filter",
    "report",
    "dashboard",
    "email",
    "password",
    "token",
    "session",
    "upload",
    "download",
    "avatar",
    "profile",
    "settings",
    "billing",
    "invoice",
    "payment",
    "timeout",
    "memory",
    "leak",
    "slow",
    "query",
    "index",
    "cache",
    "queue",
    "retry",
    "broker",
    "webhook",
    "api",
    "docs",
    "mobile",
    "desktop",
    "dark",
    "mode",
    "layout",
    "button",
    "table",
    "chart",
    "pagination",
    "sort",
    "locale",
]
PRIORITIES = ("low", "medium", "medium", "high", "critical")
TYPES = ("bug", "bug", "feature", "task", "improvement")
STATUSES = ("open", "open", "in_progress", "in_review", "done", "closed")
LABELS = ("ui", "backend", "perf", "security", "docs", "mobile", "api")
ASSIGNED_SHARE = 0.3
DUE_SHARE = 0.2
COLUMNS = (
    "id",
    "project_id",
    "number",
    "key",
    "title",
    "description",
    "description_html",
    "type",
    "priority",
    "status",
    "resolution",
    "reporter_id",
    "assignee_id",
    "labels",
    "due_date",
    "created_at",
    "updated_at",
    "version",
)


def _rows(
    project_id: uuid.UUID, key: str, owner: uuid.UUID, start: int, count: int, seed: int
) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)  # noqa: S311 (test data, not security)
    now = datetime.now(UTC)
    today = now.date()
    for number in range(start, start + count):
        created = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
        status = rng.choice(STATUSES)
        # Plain lower-case words (WORDS): markdown renders them as exactly one paragraph,
        # stored as the tickets service stores it on write (docs/adr/0025).
        description = " ".join(rng.choices(WORDS, k=rng.randrange(10, 40)))
        yield (
            uuid.uuid4(),
            project_id,
            number,
            f"{key}-{number}",
            " ".join(rng.choices(WORDS, k=rng.randrange(3, 8))).capitalize(),
            description,
            f"<p>{description}</p>\n",
            rng.choice(TYPES),
            rng.choice(PRIORITIES),
            status,
            "fixed" if status in ("done", "closed") else None,
            owner,
            owner if rng.random() < ASSIGNED_SHARE else None,
            rng.sample(LABELS, k=rng.randrange(0, 3)),
            today + timedelta(days=rng.randrange(1, 200)) if rng.random() < DUE_SHARE else None,
            created,
            created + timedelta(minutes=rng.randrange(0, 600)),
            1,
        )


async def seed(dsn: str, *, key: str, tickets: int, owner_email: str, batch: int = 50_000) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        owner = await conn.fetchval(
            "SELECT id FROM auth.users WHERE email = $1", owner_email.lower()
        )
        if owner is None:
            raise SystemExit(f"no user {owner_email}; start `make up` once first")
        project_id = await conn.fetchval("SELECT id FROM projects.projects WHERE key = $1", key)
        if project_id is None:
            project_id = uuid.uuid4()
            now = datetime.now(UTC)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO projects.projects (id, key, name, description, created_by, "
                    "created_at, updated_at, version) VALUES ($1, $2, $3, '', $4, $5, $5, 1)",
                    project_id,
                    key,
                    f"Seeded project {key}",
                    owner,
                    now,
                )
                await conn.execute(
                    "INSERT INTO projects.memberships (project_id, user_id, display_name, role, "
                    "added_at) VALUES ($1, $2, 'Administrator', 'owner', $3)",
                    project_id,
                    owner,
                    now,
                )
        start = 1 + (
            await conn.fetchval(
                "SELECT last_number FROM tickets.project_counters WHERE project_id = $1",
                project_id,
            )
            or 0
        )
        began = time.monotonic()
        written = 0
        while written < tickets:
            count = min(batch, tickets - written)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "tickets",
                    schema_name="tickets",
                    columns=COLUMNS,
                    records=_rows(project_id, key, owner, start + written, count, start + written),
                )
                await conn.execute(
                    "INSERT INTO tickets.project_counters (project_id, last_number) "
                    "VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET last_number = $2",
                    project_id,
                    start + written + count - 1,
                )
            written += count
            rate = written / (time.monotonic() - began)
            print(f"  {written:>9,} tickets  ({rate:,.0f}/s)", flush=True)
        await conn.execute("ANALYZE tickets.tickets")
        print(f"seeded {tickets:,} tickets into {key} in {time.monotonic() - began:.0f} s")
    finally:
        await conn.close()
