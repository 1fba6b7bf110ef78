"""Every ticket of a list, for `Accept: text/csv` and `application/x-ndjson` (docs/adr/0045).

The list is checked like a page of it (404, 422 before anything is sent), counted, and then
read in keyset pages of `EXPORT_PAGE` in the list's order: each page one indexed
statement, so an export of a million tickets holds one page in memory at a time and no
transaction open while the client reads. A ticket changed during the export may be missed
or seen twice, as when paging by hand; each page is a consistent snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ports import TicketQuery
from bugtracker_tickets.application.use_cases import ListRequest, TicketUseCases
from bugtracker_tickets.domain.errors import ExportTooLargeError
from bugtracker_tickets.domain.tickets import Ticket

EXPORT_PAGE = 1000
MAX_EXPORT_ROWS = 1_000_000


@dataclass(frozen=True)
class TicketExport:
    field_keys: list[str]
    """The custom fields of the projects listed: a column each in CSV."""
    total: int
    tickets: AsyncIterator[Ticket]


@dataclass
class ExportUseCases:
    cases: TicketUseCases

    async def export(
        self, principal: Principal, project_ref: str | None, request: ListRequest
    ) -> TicketExport:
        query = await self.cases.search_query(principal, project_ref, request)
        if query is None:
            return TicketExport([], 0, _nothing())
        if query.sort == "rank":
            # Relevance ranks every match for each page; an export is in a keyset order.
            query = dataclasses.replace(query, sort="-updated_at")
        total = await self.cases.reads.count(query)
        if total > MAX_EXPORT_ROWS:
            raise ExportTooLargeError(total, MAX_EXPORT_ROWS)
        async with self.cases.uow() as uow:
            keys = await uow.configuration.field_keys(query.project_ids)
        return TicketExport(keys, total, self._pages(query))

    async def _pages(self, query: TicketQuery) -> AsyncIterator[Ticket]:
        after = None
        while True:
            page = await self.cases.reads.search(
                query, after=after, limit=EXPORT_PAGE, with_total=False
            )
            for ticket in page.tickets:
                yield ticket
            if page.next_after is None:
                return
            after = page.next_after


async def _nothing() -> AsyncIterator[Ticket]:
    return
    yield  # an async generator that yields nothing
