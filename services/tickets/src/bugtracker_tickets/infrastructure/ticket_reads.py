"""The reads outside a unit of work: the ticket every ticket request starts with, in one
statement on the driver connection (bugtracker_shared.db.driver_connection) that also
reads the caller's access from the membership view (docs/adr/0023, 0025), and ticket
lists on an autocommit connection."""

from __future__ import annotations

import uuid
from typing import Any

from bugtracker_shared.db import driver_connection
from bugtracker_shared.tokens import Principal
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_tickets.application.ports import Page, TicketQuery
from bugtracker_tickets.domain.tickets import ProjectAccess, Ticket
from bugtracker_tickets.infrastructure.membership_view import MembershipView, granted
from bugtracker_tickets.infrastructure.repositories import (
    TICKET_COLUMNS,
    TicketSearch,
    ticket_from_row,
)

# Custom field values without the keys of deleted fields, as repositories.LIVE_FIELDS.
_LIVE_FIELDS = """CASE WHEN t.fields = '{}'::jsonb THEN t.fields ELSE t.fields - COALESCE(
    (SELECT array_agg(f.key) FROM tickets.custom_fields f
     WHERE f.project_id = t.project_id AND f.deleted_at IS NOT NULL), '{}'::text[]) END
    AS fields"""
_COLUMNS = ", ".join(
    _LIVE_FIELDS if column.name == "fields" else f"t.{column.name}" for column in TICKET_COLUMNS
)
_TICKET = f"SELECT {_COLUMNS} FROM tickets.tickets t WHERE t.id = $1"  # noqa: S608 (names)
# The ticket with its project as the view has it and the caller's role in it (NULLs when
# the view does not know the project or the caller is not a member).
_TICKET_AND_ACCESS = f"""
SELECT {_COLUMNS}, p.key AS view_key, p.archived AS view_archived, m.role AS view_role
FROM tickets.tickets t
LEFT JOIN tickets.project_view p ON p.id = t.project_id AND NOT p.deleted
LEFT JOIN tickets.member_view m ON m.project_id = t.project_id AND m.user_id = $2
WHERE t.id = $1
"""  # noqa: S608 (column names)


def _by_key(statement: str) -> str:
    return statement.replace("WHERE t.id = $1", "WHERE t.key = $1")


_STATEMENTS = {
    (False, False): _TICKET,
    (False, True): _by_key(_TICKET),
    (True, False): _TICKET_AND_ACCESS,
    (True, True): _by_key(_TICKET_AND_ACCESS),
}


class DriverTicketReads:
    def __init__(self, engine: AsyncEngine, view: MembershipView | None = None) -> None:
        self._engine = engine
        self._view = view
        # Reads need no transaction: each statement is one consistent snapshot.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def get(
        self, ref: uuid.UUID | str, caller: Principal
    ) -> tuple[Ticket, ProjectAccess | None] | None:
        with_access = self._view is not None and self._view.trusted
        statement = _STATEMENTS[with_access, isinstance(ref, str)]
        async with driver_connection(self._engine) as conn:
            if with_access:
                row = await conn.fetchrow(statement, ref, caller.user_id)
            else:
                row = await conn.fetchrow(statement, ref)
        if row is None:
            return None
        ticket = ticket_from_row(row)
        if not with_access or row["view_key"] is None:
            return ticket, None
        return ticket, granted(
            ticket.project_id, row["view_key"], row["view_archived"], row["view_role"], caller
        )

    async def search(
        self, query: TicketQuery, *, after: list[Any] | None, limit: int, with_total: bool
    ) -> Page:
        async with self._autocommit.connect() as conn:
            return await TicketSearch(conn).search(
                query, after=after, limit=limit, with_total=with_total
            )

    async def count(self, query: TicketQuery) -> int:
        async with self._autocommit.connect() as conn:
            return await TicketSearch(conn).count(query)
