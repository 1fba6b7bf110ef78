from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.application.ports import TicketFilter
from bugtracker_tickets.domain.tickets import Priority, Status, Ticket, TicketType
from bugtracker_tickets.infrastructure.tables import project_counters, tickets


def _ticket(row: RowMapping) -> Ticket:
    return Ticket(
        id=row["id"],
        project_id=row["project_id"],
        key=row["key"],
        number=row["number"],
        title=row["title"],
        description=row["description"],
        type=TicketType(row["type"]),
        priority=Priority(row["priority"]),
        status=Status(row["status"]),
        resolution=row["resolution"],
        reporter_id=row["reporter_id"],
        assignee_id=row["assignee_id"],
        labels=list(row["labels"]),
        due_date=row["due_date"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _values(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "project_id": ticket.project_id,
        "number": ticket.number,
        "key": ticket.key,
        "title": ticket.title,
        "description": ticket.description,
        "type": ticket.type.value,
        "priority": ticket.priority.value,
        "status": ticket.status.value,
        "resolution": ticket.resolution,
        "reporter_id": ticket.reporter_id,
        "assignee_id": ticket.assignee_id,
        "labels": ticket.labels,
        "due_date": ticket.due_date,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "version": ticket.version,
    }


class SqlTicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_number(self, project_id: uuid.UUID) -> int:
        statement = (
            pg_insert(project_counters)
            .values(project_id=project_id, last_number=1)
            .on_conflict_do_update(
                index_elements=[project_counters.c.project_id],
                set_={"last_number": project_counters.c.last_number + 1},
            )
            .returning(project_counters.c.last_number)
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def add(self, ticket: Ticket) -> None:
        await self._session.execute(insert(tickets).values(**_values(ticket)))

    async def _one(self, query: Any) -> Ticket | None:
        row = (await self._session.execute(query)).mappings().first()
        return _ticket(row) if row else None

    async def get(self, ticket_id: uuid.UUID) -> Ticket | None:
        return await self._one(select(tickets).where(tickets.c.id == ticket_id))

    async def get_by_key(self, key: str) -> Ticket | None:
        return await self._one(select(tickets).where(tickets.c.key == key))

    async def get_for_update(self, ticket_id: uuid.UUID) -> Ticket | None:
        return await self._one(select(tickets).where(tickets.c.id == ticket_id).with_for_update())

    async def update_assignee(self, ticket: Ticket) -> None:
        await self._session.execute(
            update(tickets)
            .where(tickets.c.id == ticket.id)
            .values(
                assignee_id=ticket.assignee_id,
                updated_at=ticket.updated_at,
                version=ticket.version,
            )
        )

    async def list(
        self,
        where: TicketFilter,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Ticket]:
        query = (
            select(tickets)
            .where(tickets.c.project_id == where.project_id)
            .order_by(tickets.c.updated_at.desc(), tickets.c.id.desc())
            .limit(limit)
        )
        if where.statuses:
            query = query.where(tickets.c.status.in_([s.value for s in where.statuses]))
        if where.unassigned:
            query = query.where(tickets.c.assignee_id.is_(None))
        elif where.assignee_id is not None:
            query = query.where(tickets.c.assignee_id == where.assignee_id)
        if after is not None:
            query = query.where(tuple_(tickets.c.updated_at, tickets.c.id) < after)
        rows = (await self._session.execute(query)).mappings().all()
        return [_ticket(row) for row in rows]
