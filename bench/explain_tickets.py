"""Print the PostgreSQL plans of the tickets service's main list queries.

The statements are the ones the repository really sends (captured from SQLAlchemy), run
with EXPLAIN (ANALYZE, BUFFERS) against a database that `make seed` filled:

    uv run python bench/explain_tickets.py \
        postgresql+asyncpg://bugtracker_tickets:PW@127.0.0.1:5432/bugtracker SEED
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

from bugtracker_shared.db import create_engine
from bugtracker_tickets.application.ports import TicketQuery
from bugtracker_tickets.domain.tickets import Status
from bugtracker_tickets.infrastructure.repositories import SqlTicketRepository
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession


async def main(url: str, project_key: str) -> None:
    engine = create_engine(url, schema="tickets", pool_size=1)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    async with AsyncSession(engine) as session:
        row = (
            await session.execute(
                text(
                    "SELECT project_id, (SELECT assignee_id FROM tickets WHERE assignee_id IS "
                    "NOT NULL LIMIT 1) FROM tickets WHERE key = :key"
                ),
                {"key": f"{project_key}-1"},
            )
        ).one()
        project_id, someone = row
        repo = SqlTicketRepository(session)
        cases: list[tuple[str, TicketQuery, list[Any] | None]] = [
            ("default list: newest updated first", TicketQuery(project_ids=(project_id,)), None),
            (
                "next page (keyset after a cursor)",
                TicketQuery(project_ids=(project_id,)),
                ["2026-06-01T00:00:00+00:00", str(uuid.UUID(int=0))],
            ),
            (
                "by priority, open only",
                TicketQuery(project_ids=(project_id,), statuses=(Status.OPEN,), sort="-priority"),
                None,
            ),
            ("due date ascending", TicketQuery(project_ids=(project_id,), sort="due_date"), None),
            (
                "full text, by relevance: common words",
                TicketQuery(project_ids=(project_id,), text="crash login", sort="rank"),
                None,
            ),
            (
                "full text, by relevance: a selective word",
                TicketQuery(project_ids=(project_id,), text="segfault", sort="rank"),
                None,
            ),
            ("label filter", TicketQuery(project_ids=(project_id,), labels=("security",)), None),
            (
                "my tickets across projects (assignee=me)",
                TicketQuery(project_ids=(project_id,), assignee_id=someone),
                None,
            ),
        ]
        for title, query, after in cases:
            captured.clear()
            await repo.search(query, after=after, limit=25, with_total=False)
            statement, params = captured[0]
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None  # noqa: S101
            sql, args = _to_asyncpg(statement, params)
            plan = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *args)
            print(f"### {title}\n\n```")
            print("\n".join(line[0] for line in plan))
            print("```\n")
    await engine.dispose()


def _to_asyncpg(statement: str, params: Any) -> tuple[str, list[Any]]:
    """SQLAlchemy's asyncpg dialect already numbers parameters ($1...)."""
    return statement, list(params)


if __name__ == "__main__":
    url, *rest = sys.argv[1:]
    asyncio.run(main(url, rest[0] if rest else "SEED"))
