"""The use cases of relations between tickets (docs/adr/0039).

A relation is stored once (`Relation.between`) and seen from both tickets, each with its
own type (`blocks` / `blocked_by`...). It is not a field of either ticket: their versions
do not change, but each of the two gets an event (`ticket.related`, `ticket.unrelated`)
in the same transaction. A caller sees a relation only while they may read the other
ticket's project and that ticket is live; a hidden relation answers 404 as one that
does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bugtracker_shared.pagination import (
    Listing,
    decode_time_id_cursor,
    encode_cursor,
    time_id_key,
)
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import UnitOfWork
from bugtracker_tickets.application.ticket_events import other_ticket, record
from bugtracker_tickets.application.use_cases import TicketUseCases
from bugtracker_tickets.domain.errors import (
    InvalidRelationError,
    RelationCycleError,
    RelationExistsError,
    RelationNotFoundError,
    TicketNotFoundError,
)
from bugtracker_tickets.domain.planning import (
    MAX_BLOCKS_DEPTH,
    RelatedTicket,
    Relation,
    RelationType,
    TicketRef,
)
from bugtracker_tickets.domain.tickets import Ticket


@dataclass(frozen=True)
class Related:
    """A new relation, seen from `ticket_id`."""

    ticket_id: uuid.UUID
    relation: RelatedTicket


@dataclass
class RelationUseCases:
    uow: Callable[[], UnitOfWork]
    tickets: TicketUseCases

    async def list_relations(
        self, principal: Principal, ticket_ref: str, *, limit: int, cursor: str | None
    ) -> Listing[RelatedTicket]:
        """The ticket's relations seen from it, oldest first, to live tickets of projects
        the caller may read now."""
        ticket, _ = await self.tickets.visible_ticket(principal, ticket_ref)
        after: list[Any] | None = list(decode_time_id_cursor(cursor)) if cursor else None
        readable = tuple(await self.tickets.projects.visible_projects(principal))
        async with self.uow() as uow:
            items, next_after = await uow.relations.of_ticket(
                ticket.id, project_ids=readable, after=after, limit=limit
            )
        next_cursor = encode_cursor(time_id_key(*next_after)) if next_after else None
        return Listing(items, next_cursor)

    async def _other(self, principal: Principal, ref: str) -> Ticket:
        """The other ticket of a relation: live, in a project the caller may read (404
        otherwise, whichever it is)."""
        other, _ = await self.tickets.visible_ticket(principal, ref)
        return other

    async def relate(
        self, principal: Principal, ticket_ref: str, type: RelationType, other_ref: str
    ) -> Related:
        """`ticket_ref` <type> `other_ref`, seen from `ticket_ref`."""
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require_edit(ticket.reporter_id, principal.user_id)
        other = await self._other(principal, other_ref)
        if other.id == ticket.id:
            raise InvalidRelationError("A ticket cannot be related to itself.")
        relation = Relation.between(
            ticket.id, type, other.id, created_at=datetime.now(UTC), created_by=principal.user_id
        )
        async with self.uow() as uow:
            if relation.type is RelationType.BLOCKS:
                # Before the rows: every `blocks` insertion takes the locks in this order.
                await uow.relations.lock_graph()
            # Both rows locked (in id order) until the commit: neither is deleted under the
            # new relation, and two insertions between the same tickets take turns.
            locked = await self._lock(uow, ticket.id, other.id)
            await self._check_new(uow, relation)
            if not await uow.relations.add(relation):
                raise RelationExistsError()
            await self._announce(uow, "ticket.related", relation, locked, principal)
            await uow.commit()
        seen, _ = relation.seen_from(ticket.id)
        seen_ticket = RelatedTicket(
            relation.id, seen, TicketRef.of(locked[other.id]), relation.created_at
        )
        return Related(ticket.id, seen_ticket)

    async def unrelate(self, principal: Principal, ticket_ref: str, relation_id: uuid.UUID) -> None:
        ticket, access = await self.tickets.visible_ticket(principal, ticket_ref)
        access.require_edit(ticket.reporter_id, principal.user_id)
        async with self.uow() as uow:
            relation = await uow.relations.get(relation_id)
        if relation is None or ticket.id not in (relation.source_id, relation.target_id):
            raise RelationNotFoundError()
        _, other_id = relation.seen_from(ticket.id)
        try:
            await self._other(principal, str(other_id))
        except TicketNotFoundError as exc:
            raise RelationNotFoundError() from exc
        async with self.uow() as uow:
            locked = await self._lock(uow, ticket.id, other_id)
            if await uow.relations.get(relation_id) is None:
                raise RelationNotFoundError()  # removed meanwhile
            await uow.relations.remove(relation_id)
            await self._announce(uow, "ticket.unrelated", relation, locked, principal)
            await uow.commit()

    @staticmethod
    async def _lock(uow: UnitOfWork, *ticket_ids: uuid.UUID) -> dict[uuid.UUID, Ticket]:
        """The live tickets, locked in id order (as every multi-ticket write locks)."""
        locked = {t.id: t for t in await uow.tickets.get_many(sorted(ticket_ids))}
        if any(
            ticket_id not in locked or locked[ticket_id].deleted_at is not None
            for ticket_id in ticket_ids
        ):
            raise TicketNotFoundError("No such ticket.")
        return locked

    @staticmethod
    async def _check_new(uow: UnitOfWork, relation: Relation) -> None:
        """No relation of the same stored type between the two tickets (either way round),
        and for `blocks` no cycle: the target must not already block the source."""
        between = await uow.relations.exists_between(relation.source_id, relation.target_id)
        for existing in between:
            same_way = existing.source_id == relation.source_id
            if existing.type is relation.type and (
                same_way or relation.type is not RelationType.BLOCKS
            ):
                raise RelationExistsError()
        if relation.type is not RelationType.BLOCKS:
            return
        path = await uow.relations.blocks_path(
            relation.target_id, relation.source_id, max_depth=MAX_BLOCKS_DEPTH
        )
        if path is True:
            raise RelationCycleError()
        if path is None:
            raise InvalidRelationError(
                f"The blocked ticket starts a chain of blocks relations longer than "
                f"{MAX_BLOCKS_DEPTH}: it cannot be checked for a cycle. Shorten the chain first."
            )

    @staticmethod
    async def _announce(
        uow: UnitOfWork,
        name: str,
        relation: Relation,
        tickets: dict[uuid.UUID, Ticket],
        principal: Principal,
    ) -> None:
        """One event per side, each with the relation as that ticket sees it."""
        for ticket_id in (relation.source_id, relation.target_id):
            seen, other_id = relation.seen_from(ticket_id)
            other = tickets[other_id]
            await record(
                uow,
                name,
                tickets[ticket_id],
                principal,
                relation={
                    "id": relation.id,
                    "type": seen.value,
                    "ticket": other_ticket(other),
                },
            )
