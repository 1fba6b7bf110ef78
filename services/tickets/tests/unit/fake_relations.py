"""In-memory fake of the RelationRepository port (tests only).

Relations live in the unit of work's private `TicketsState.relations`; the reads walk
the dicts in Python with the same rules as SqlRelationRepository (deleted tickets are
walked by `blocks_path`, hidden by the lists)."""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from bugtracker_tickets.domain.planning import RelatedTicket, Relation, RelationType, TicketRef
from bugtracker_tickets.domain.tickets import Ticket

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork


class FakeRelationRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
        self.graph_locked = False

    @property
    def _relations(self) -> dict[uuid.UUID, Relation]:
        return self._uow.state.relations

    @property
    def _tickets(self) -> dict[uuid.UUID, Ticket]:
        return self._uow.state.tickets

    def _live(self, ticket_id: uuid.UUID) -> Ticket | None:
        ticket = self._tickets.get(ticket_id)
        return ticket if ticket is not None and ticket.deleted_at is None else None

    def _blocks(self) -> list[Relation]:
        return [r for r in self._relations.values() if r.type is RelationType.BLOCKS]

    async def add(self, relation: Relation) -> bool:
        ident = (relation.source_id, relation.target_id, relation.type)
        if any((r.source_id, r.target_id, r.type) == ident for r in self._relations.values()):
            return False
        self._relations[relation.id] = relation
        return True

    async def get(self, relation_id: uuid.UUID) -> Relation | None:
        return self._relations.get(relation_id)

    async def remove(self, relation_id: uuid.UUID) -> None:
        self._relations.pop(relation_id, None)

    async def lock_graph(self) -> None:
        self.graph_locked = True  # one transaction at a time here: nothing to wait for

    async def exists_between(self, a: uuid.UUID, b: uuid.UUID) -> list[Relation]:
        return sorted(
            (r for r in self._relations.values() if {r.source_id, r.target_id} == {a, b}),
            key=lambda r: (r.created_at, r.id),
        )

    async def blocks_path(
        self, start: uuid.UUID, goal: uuid.UUID, *, max_depth: int
    ) -> bool | None:
        edges: dict[uuid.UUID, list[uuid.UUID]] = {}
        for relation in self._blocks():
            edges.setdefault(relation.source_id, []).append(relation.target_id)
        frontier = set(edges.get(start, []))
        for _depth in range(1, max_depth + 1):
            if goal in frontier:
                return True
            if _depth == max_depth:
                break
            frontier = {target for ticket in frontier for target in edges.get(ticket, [])}
        return None if any(edges.get(ticket) for ticket in frontier) else False

    async def of_ticket(
        self,
        ticket_id: uuid.UUID,
        *,
        project_ids: tuple[uuid.UUID, ...] | None,
        after: list[Any] | None,
        limit: int,
    ) -> tuple[list[RelatedTicket], list[Any] | None]:
        found = []
        for relation in sorted(self._relations.values(), key=lambda r: (r.created_at, r.id)):
            if ticket_id not in (relation.source_id, relation.target_id):
                continue
            if after is not None and (relation.created_at, relation.id) <= tuple(after):
                continue
            seen, other_id = relation.seen_from(ticket_id)
            other = self._live(other_id)
            if other is None or (project_ids is not None and other.project_id not in project_ids):
                continue
            found.append(RelatedTicket(relation.id, seen, TicketRef.of(other), relation.created_at))
        page = found[:limit]
        next_after = [page[-1].created_at, page[-1].id] if len(found) > limit else None
        return page, next_after

    def _unfinished_blockers_of(self, ticket_id: uuid.UUID) -> list[Ticket]:
        blockers = (self._live(r.source_id) for r in self._blocks() if r.target_id == ticket_id)
        return [t for t in blockers if t is not None and not t.is_done]

    async def unfinished_blockers(self, ticket_id: uuid.UUID, *, limit: int) -> list[TicketRef]:
        found = sorted(self._unfinished_blockers_of(ticket_id), key=lambda t: (t.key, t.id))
        return [TicketRef.of(t) for t in found[:limit]]

    async def unblocked_by(self, blocker_id: uuid.UUID) -> list[Ticket]:
        found = []
        for relation in self._blocks():
            if relation.source_id != blocker_id:
                continue
            ticket = self._live(relation.target_id)
            if ticket is None or ticket.is_done:
                continue
            others = [b for b in self._unfinished_blockers_of(ticket.id) if b.id != blocker_id]
            if not others:
                found.append(ticket)
        return copy.deepcopy(sorted(found, key=lambda t: t.id))
