"""Print the PostgreSQL plans of the tickets service's main list queries.

The statements are the ones the service really sends (captured from SQLAlchemy: the list
queries of `TicketSearch`, and the milestone read of `SqlMilestoneRepository`), run with
EXPLAIN (ANALYZE, BUFFERS) against a database that `make seed` filled (the planning
filters need the milestones, sub-tickets and `blocks` relations it makes):

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
from bugtracker_tickets.infrastructure.milestone_repository import SqlMilestoneRepository
from bugtracker_tickets.infrastructure.repositories import TicketSearch
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


async def main(url: str, project_key: str) -> None:
    engine = create_engine(url, schema="tickets", pool_size=1)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT t.project_id, (SELECT assignee_id FROM tickets WHERE assignee_id IS "
                    "NOT NULL LIMIT 1), (SELECT id FROM milestones m WHERE m.project_id = "
                    "t.project_id AND m.deleted_at IS NULL ORDER BY total DESC LIMIT 1), "
                    "(SELECT parent_id FROM tickets c WHERE c.project_id = t.project_id AND "
                    "c.parent_id IS NOT NULL LIMIT 1) FROM tickets t WHERE key = :key"
                ),
                {"key": f"{project_key}-1"},
            )
        ).one()
        project_id, someone, milestone, parent = row
        await conn.commit()
        cases: list[tuple[str, TicketQuery, list[Any] | None]] = [
            ("default list: newest updated first", TicketQuery(project_ids=(project_id,)), None),
            (
                "next page (keyset after a cursor)",
                TicketQuery(project_ids=(project_id,)),
                ["2026-06-01T00:00:00+00:00", str(uuid.UUID(int=0))],
            ),
            (
                "by priority, open only",
                TicketQuery(project_ids=(project_id,), statuses=("open",), sort="-priority"),
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
        if milestone is not None:
            cases.append(
                (
                    "milestone=<the biggest milestone>",
                    TicketQuery(project_ids=(project_id,), milestone_id=milestone),
                    None,
                )
            )
        cases.append(
            ("milestone=none", TicketQuery(project_ids=(project_id,), no_milestone=True), None)
        )
        if parent is not None:
            cases += [
                (
                    "parent=<id>",
                    TicketQuery(project_ids=(project_id,), parent_id=parent),
                    None,
                ),
                (
                    "GET .../children (parent, oldest first)",
                    TicketQuery(project_ids=(project_id,), parent_id=parent, sort="created_at"),
                    None,
                ),
            ]
        cases.append(("is=blocked", TicketQuery(project_ids=(project_id,), blocked=True), None))
        for title, query, after in cases:
            captured.clear()
            await TicketSearch(conn).search(query, after=after, limit=25, with_total=False)
            await conn.commit()
            await _explain(conn, title, *captured[0])
        if milestone is not None:
            async with AsyncSession(bind=conn) as session:
                captured.clear()
                await SqlMilestoneRepository(session).get(milestone)
                await _explain(conn, "GET /milestones/{id}: the progress row", *captured[0])
    await engine.dispose()


async def _explain(conn: AsyncConnection, title: str, statement: str, params: Any) -> None:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # noqa: S101
    sql, args = _to_asyncpg(statement, params)
    plan = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *args)
    print(f"### {title}\n\n```")
    print("\n".join(line[0] for line in plan))
    print("```\n", flush=True)


def _to_asyncpg(statement: str, params: Any) -> tuple[str, list[Any]]:
    """SQLAlchemy's asyncpg dialect already numbers parameters ($1...)."""
    return statement, list(params)


if __name__ == "__main__":
    url, *rest = sys.argv[1:]
    asyncio.run(main(url, rest[0] if rest else "SEED"))
