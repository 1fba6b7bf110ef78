"""The ticket read every ticket request starts with, in one statement on the driver
connection (bugtracker_shared.db.driver_connection)."""

from __future__ import annotations

import uuid

from bugtracker_shared.db import driver_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bugtracker_tickets.domain.tickets import Ticket
from bugtracker_tickets.infrastructure.repositories import TICKET_COLUMNS, ticket_from_row

_COLUMNS = ", ".join(column.name for column in TICKET_COLUMNS)
_BY_ID = f"SELECT {_COLUMNS} FROM tickets.tickets WHERE id = $1"  # noqa: S608 (column names)
_BY_KEY = f"SELECT {_COLUMNS} FROM tickets.tickets WHERE key = $1"  # noqa: S608


class DriverTicketReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, ref: uuid.UUID | str) -> Ticket | None:
        async with driver_connection(self._engine) as conn:
            row = await conn.fetchrow(_BY_KEY if isinstance(ref, str) else _BY_ID, ref)
        return ticket_from_row(row) if row is not None else None
