"""The RelationRepository port on PostgreSQL.

A relation is one row (`source` <type> `target`, the type `blocks`, `duplicates` or
`relates_to`); each side reads it with the type seen from there (RelationType.inverse).
The reads that follow `blocks` chains are single recursive statements with a depth
bound: the graph never comes into Python."""

from __future__ import annotations

import uuid
from typing import Any, Final

from bugtracker_shared.rows import Columns
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bugtracker_tickets.domain.planning import RelatedTicket, Relation, RelationType, TicketRef
from bugtracker_tickets.domain.tickets import Ticket
from bugtracker_tickets.infrastructure.repositories import (
    REF_COLUMNS,
    TICKET_COLUMNS,
    ticket_from_row,
    unfinished,
)
from bugtracker_tickets.infrastructure.tables import relations, tickets

RELATIONS = Columns(Relation, relations, load={"type": RelationType})

# The key of the transaction-scoped advisory lock that serializes `blocks` insertions (the
# one-bigint form: a lock space apart from the (int, int) locks of the hierarchy).
BLOCKS_GRAPH_LOCK: Final = 0x7E1_B10C5

_BLOCKS = RelationType.BLOCKS.value

# Whether `start` reaches `goal` along `blocks` edges within `max_depth` steps, and whether
# a chain from `start` goes on past that depth (then the answer is unknown). UNION (not
# UNION ALL) keeps each (ticket, depth) once, so diamonds in the graph cost rows linear in
# tickets x depth, never in paths; the walk stops at `goal`. Deleted tickets are walked
# too: their relations come back with them on restore.
_BLOCKS_PATH = text(
    """
WITH RECURSIVE reach(id, depth) AS (
    SELECT r.target_id, 1
    FROM tickets.relations r
    WHERE r.source_id = :start AND r.type = 'blocks'
  UNION
    SELECT r.target_id, reach.depth + 1
    FROM reach
    JOIN tickets.relations r ON r.source_id = reach.id AND r.type = 'blocks'
    WHERE reach.depth < :max_depth AND reach.id <> :goal
)
SELECT
    EXISTS (SELECT 1 FROM reach WHERE reach.id = :goal) AS found,
    EXISTS (
        SELECT 1
        FROM reach
        JOIN tickets.relations r ON r.source_id = reach.id AND r.type = 'blocks'
        WHERE reach.depth = :max_depth
    ) AS deeper
"""
).columns(found=Boolean, deeper=Boolean)


class SqlRelationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, relation: Relation) -> bool:
        statement = (
            pg_insert(relations)
            .values(RELATIONS.values(relation))
            .on_conflict_do_nothing(index_elements=["source_id", "target_id", "type"])
            .returning(relations.c.id)
        )
        return (await self._session.execute(statement)).scalar_one_or_none() is not None

    async def get(self, relation_id: uuid.UUID) -> Relation | None:
        row = (
            (await self._session.execute(select(relations).where(relations.c.id == relation_id)))
            .mappings()
            .one_or_none()
        )
        return RELATIONS.from_row(row) if row is not None else None

    async def remove(self, relation_id: uuid.UUID) -> None:
        await self._session.execute(delete(relations).where(relations.c.id == relation_id))

    async def lock_graph(self) -> None:
        await self._session.execute(select(func.pg_advisory_xact_lock(BLOCKS_GRAPH_LOCK)))

    async def exists_between(self, a: uuid.UUID, b: uuid.UUID) -> list[Relation]:
        query = (
            select(relations)
            .where(
                or_(
                    and_(relations.c.source_id == a, relations.c.target_id == b),
                    and_(relations.c.source_id == b, relations.c.target_id == a),
                )
            )
            .order_by(relations.c.created_at, relations.c.id)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [RELATIONS.from_row(row) for row in rows]

    async def blocks_path(
        self, start: uuid.UUID, goal: uuid.UUID, *, max_depth: int
    ) -> bool | None:
        row = (
            await self._session.execute(
                _BLOCKS_PATH, {"start": start, "goal": goal, "max_depth": max_depth}
            )
        ).one()
        if row.found:
            return True
        return None if row.deeper else False

    async def of_ticket(
        self,
        ticket_id: uuid.UUID,
        *,
        project_ids: tuple[uuid.UUID, ...] | None,
        after: list[Any] | None,
        limit: int,
    ) -> tuple[list[RelatedTicket], list[Any] | None]:
        # Each side by its own index: the unique (source_id, ...) and (target_id, ...).
        outgoing = select(
            relations.c.id,
            relations.c.type,
            literal(True).label("outgoing"),
            relations.c.target_id.label("other_id"),
            relations.c.created_at,
        ).where(relations.c.source_id == ticket_id)
        incoming = select(
            relations.c.id,
            relations.c.type,
            literal(False).label("outgoing"),
            relations.c.source_id.label("other_id"),
            relations.c.created_at,
        ).where(relations.c.target_id == ticket_id)
        mine = union_all(outgoing, incoming).subquery("mine")
        conditions: list[ColumnElement[bool]] = [tickets.c.deleted_at.is_(None)]
        if project_ids is not None:
            conditions.append(tickets.c.project_id.in_(project_ids))
        if after is not None:
            conditions.append(tuple_(mine.c.created_at, mine.c.id) > tuple_(*after))
        query = (
            select(
                mine.c.id.label("relation_id"),
                mine.c.type.label("stored_type"),
                mine.c.outgoing,
                mine.c.created_at.label("related_at"),
                *REF_COLUMNS,
            )
            .join(tickets, tickets.c.id == mine.c.other_id)
            .where(*conditions)
            .order_by(mine.c.created_at, mine.c.id)
            .limit(limit + 1)
        )
        rows = (await self._session.execute(query)).mappings().all()
        found = []
        for row in rows[:limit]:
            stored = RelationType(row["stored_type"])
            found.append(
                RelatedTicket(
                    id=row["relation_id"],
                    type=stored if row["outgoing"] else stored.inverse,
                    ticket=TicketRef(**{c.name: row[c.name] for c in REF_COLUMNS}),
                    created_at=row["related_at"],
                )
            )
        next_after = None
        if len(rows) > limit:
            last = found[-1]
            next_after = [last.created_at, last.id]
        return found, next_after

    async def unfinished_blockers(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        query = (
            select(*REF_COLUMNS)
            .join(relations, relations.c.source_id == tickets.c.id)
            .where(
                relations.c.target_id == ticket_id,
                relations.c.type == _BLOCKS,
                unfinished(),
            )
            .order_by(tickets.c.key, tickets.c.id)
            .limit(limit)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [TicketRef(**row) for row in rows]

    async def unblocked_by(self, blocker_id: uuid.UUID) -> list[Ticket]:
        other = relations.alias("other")
        blocker = tickets.alias("blocker")
        another_unfinished = exists().where(
            other.c.target_id == tickets.c.id,
            other.c.type == _BLOCKS,
            other.c.source_id != blocker_id,
            blocker.c.id == other.c.source_id,
            unfinished(blocker),
        )
        query = (
            select(*TICKET_COLUMNS)
            .join(relations, relations.c.target_id == tickets.c.id)
            .where(
                relations.c.source_id == blocker_id,
                relations.c.type == _BLOCKS,
                unfinished(),
                ~another_unfinished,
            )
            .order_by(tickets.c.id)
            # Locked, so that each one's `ticket.unblocked` carries its latest version
            # (a concurrent change commits first): an older sequence would be dropped as
            # stale by consumers. Blocks relations have no cycles, so single transitions
            # lock along the graph's order and cannot deadlock.
            .with_for_update(of=tickets)
        )
        rows = (await self._session.execute(query)).mappings().all()
        return [ticket_from_row(row) for row in rows]
