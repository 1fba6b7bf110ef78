"""Print the PostgreSQL plans of the list filtered by custom fields (`field.<key>`).

The statements are the ones the tickets service sends for the bench's `scale-field-*`
scenarios (captured from `TicketSearch.search`, the list's first page: sort -updated_at,
LIMIT 26), run against a project that `make seed` filled (its custom fields `severity`,
`estimate` and `customer`, docs/adr/0040) with EXPLAIN (ANALYZE, BUFFERS): once as a custom
plan (the parameters' values known to the planner, as for the first five executions of a
prepared statement) and once as the generic plan PostgreSQL may switch to from the sixth
on (`plan_cache_mode = force_generic_plan`), since SQLAlchemy's asyncpg dialect prepares
and caches the statement on each pooled connection:

    uv run python bench/explain_fields.py \
        postgresql+asyncpg://bugtracker_tickets:PW@127.0.0.1:5432/bugtracker SEED
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bugtracker_shared.db import create_engine
from bugtracker_tickets.application.ports import FieldFilter, TicketQuery
from bugtracker_tickets.infrastructure.repositories import TicketSearch
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection


async def main(url: str, project_key: str) -> None:
    engine = create_engine(url, schema="tickets", pool_size=1)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    async with engine.connect() as conn:
        project_id = (
            await conn.execute(
                text("SELECT project_id FROM tickets WHERE key = :key"), {"key": f"{project_key}-1"}
            )
        ).scalar_one()
        ids = dict(
            (
                await conn.execute(
                    text("SELECT key, id FROM custom_fields WHERE project_id = :p"),
                    {"p": project_id},
                )
            ).all()
        )
        customer = (
            await conn.execute(
                text(
                    "SELECT value FROM field_values WHERE field_id = :f AND value IS NOT NULL "
                    "ORDER BY value LIMIT 1"
                ),
                {"f": ids["customer"]},
            )
        ).scalar_one()
        await conn.commit()
        severity = (ids["severity"],)
        estimate = (ids["estimate"],)

        def listed(*fields: FieldFilter) -> TicketQuery:
            return TicketQuery(project_ids=(project_id,), fields=fields)

        cases = [
            (
                "scale-field-select: field.severity=critical",
                listed(FieldFilter(severity, "value", equals=("critical",))),
            ),
            (
                "scale-field-common: field.severity=normal",
                listed(FieldFilter(severity, "value", equals=("normal",))),
            ),
            (
                "scale-field-range: field.estimate.gte=15",
                listed(FieldFilter(estimate, "number", gte=15.0)),
            ),
            (
                f"scale-field-text: field.customer={customer}",
                listed(FieldFilter((ids["customer"],), "value", equals=(customer,))),
            ),
            (
                "scale-field-two: field.severity=high&field.estimate.lte=3",
                listed(
                    FieldFilter(severity, "value", equals=("high",)),
                    FieldFilter(estimate, "number", lte=3.0),
                ),
            ),
        ]
        for title, query in cases:
            captured.clear()
            began = time.perf_counter()
            page = await TicketSearch(conn).search(query, after=None, limit=25, with_total=False)
            took = (time.perf_counter() - began) * 1000
            await conn.commit()
            print(f"## {title}\n\n{len(page.tickets)} tickets, {took:.1f} ms through TicketSearch")
            if len(captured) == 1:
                print(f"\n```sql\n{captured[0][0]}\n```\nparameters: {captured[0][1]}\n")
            await _explain(conn, "custom plan", *captured[0])
            await _explain(conn, "generic plan", *captured[0], generic=True)
    await engine.dispose()


async def _explain(
    conn: AsyncConnection, title: str, statement: str, params: Any, *, generic: bool = False
) -> None:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # noqa: S101
    args = list(params)
    if generic:
        await driver.execute(f"PREPARE fields_plan AS {statement}")
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        try:
            values = ", ".join(_literal(arg) for arg in args)
            plan = await driver.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE fields_plan({values})"
            )
        finally:
            await driver.execute("RESET plan_cache_mode")
            await driver.execute("DEALLOCATE fields_plan")
    else:
        plan = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, *args)
    print(f"### {title}\n\n```")
    print("\n".join(line[0] for line in plan))
    print("```\n", flush=True)


def _literal(value: object) -> str:
    """A parameter as an SQL literal for EXECUTE (numbers bare, the rest quoted)."""
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


if __name__ == "__main__":
    url, *rest = sys.argv[1:]
    asyncio.run(main(url, rest[0] if rest else "SEED"))
