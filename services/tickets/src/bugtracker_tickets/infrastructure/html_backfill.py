"""Store the HTML of descriptions and comment bodies written before HTML was stored on
write (migration 0004, docs/adr/0025).

A start-up job: it walks each table once in primary-key order, a batch per transaction,
rendering the rows whose HTML is NULL; until it reaches a row, reads render that row
themselves, so nothing waits for it. Running it in several replicas at once is harmless
(the rows of a batch are locked, and rendering the same text twice stores the same HTML).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from bugtracker_shared.db import database_unavailable, driver_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_tickets.application.markdown import render

logger = logging.getLogger("bugtracker.tickets.html_backfill")

BATCH = 500
# (table, text column, html column): names from this module only.
_TARGETS = (("tickets", "description", "description_html"), ("comments", "body", "body_html"))


async def backfill_batch(
    engine: AsyncEngine, table: str, source: str, target: str, after: uuid.UUID | None
) -> uuid.UUID | None:
    """Render one batch after `after`; the last id of the batch, None when done."""
    select = (
        f"SELECT id, {source} FROM tickets.{table} "  # noqa: S608 (module constants)
        f"WHERE {target} IS NULL AND id > $1 ORDER BY id LIMIT {BATCH} FOR UPDATE"
    )
    store = (
        f"UPDATE tickets.{table} AS t SET {target} = u.html "  # noqa: S608
        "FROM unnest($1::uuid[], $2::text[]) AS u(id, html) WHERE t.id = u.id"
    )
    async with driver_connection(engine) as conn, conn.transaction():
        rows = await conn.fetch(select, after or uuid.UUID(int=0))
        if not rows:
            return None
        await conn.execute(store, [r["id"] for r in rows], [render(r[source]) for r in rows])
    last: uuid.UUID = rows[-1]["id"]
    return last


async def backfill_html(engine: AsyncEngine) -> None:
    for table, source, target in _TARGETS:
        after: uuid.UUID | None = None
        done = 0
        while True:
            try:
                last = await backfill_batch(engine, table, source, target, after)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                logger.warning("html backfill waits for the database (%s)", exc)
                await asyncio.sleep(5)
                continue
            if last is None:
                break
            after, done = last, done + BATCH
            await asyncio.sleep(0)  # requests go first
        if done:
            logger.info("html backfill: %s.%s stored", table, target)
