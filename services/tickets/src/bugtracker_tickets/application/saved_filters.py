"""Saved filters (docs/adr/0045): create, list, read, change, delete and run.

A filter is checked when it is saved as when it runs (its query compiled against the
projects it searches), so a mistake is a 422 at once rather than at the first run. Only
its owner may change or delete it (an admin may delete any); a filter the caller may not
see is a 404, as for everything else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bugtracker_shared.etags import check_version
from bugtracker_shared.pagination import InvalidCursorError, decode_cursor, encode_cursor
from bugtracker_shared.tokens import Principal

from bugtracker_tickets.application.ticket_queries import QueryCompiler
from bugtracker_tickets.application.use_cases import ListRequest, TicketList, TicketUseCases
from bugtracker_tickets.domain.errors import (
    FilterNotFoundError,
    ForbiddenError,
    InvalidFilterProjectError,
)
from bugtracker_tickets.domain.saved_filters import SavedFilter


@dataclass(frozen=True)
class FilterDraft:
    name: str
    query: str
    project_id: uuid.UUID | None = None
    shared: bool = False


@dataclass(frozen=True)
class FilterChanges:
    """A PATCH: what is None stays as it is, but `project_id` (see `project_given`)."""

    name: str | None = None
    query: str | None = None
    shared: bool | None = None
    project_id: uuid.UUID | None = None
    project_given: bool = False


@dataclass(frozen=True)
class FilterList:
    items: list[SavedFilter]
    next_cursor: str | None


@dataclass
class SavedFilterUseCases:
    cases: TicketUseCases

    async def create(self, principal: Principal, draft: FilterDraft) -> SavedFilter:
        now = datetime.now(UTC)
        saved = SavedFilter(
            id=uuid.uuid4(),
            owner_id=principal.user_id,
            name=draft.name,
            query=draft.query,
            project_id=draft.project_id,
            shared=draft.shared,
            created_at=now,
            updated_at=now,
        )
        await self._check(principal, saved)
        async with self.cases.uow() as uow:
            await uow.filters.add(saved)
            await uow.commit()
        return saved

    async def list(
        self,
        principal: Principal,
        *,
        project_ref: str | None,
        cursor: str | None,
        limit: int,
    ) -> FilterList:
        """The caller's own filters and those shared in projects they can see; with
        `project_ref`, only that project's."""
        project_id = None
        if project_ref is not None:
            project_id = (await self.cases.project_access(principal, project_ref)).project_id
        projects = await self.cases.projects.visible_projects(principal)
        after = None
        if cursor is not None:
            name, last = decode_cursor(cursor, 2)
            try:
                after = (str(name), uuid.UUID(str(last)))
            except ValueError:
                raise InvalidCursorError("The cursor is not valid.") from None
        async with self.cases.uow() as uow:
            found = await uow.filters.visible(
                principal.user_id, projects, project_id=project_id, after=after, limit=limit + 1
            )
        page = found[:limit]
        more = len(found) > limit
        next_cursor = encode_cursor([page[-1].name, str(page[-1].id)]) if more else None
        return FilterList(page, next_cursor)

    async def get(self, principal: Principal, filter_id: uuid.UUID) -> SavedFilter:
        async with self.cases.uow() as uow:
            saved = await uow.filters.get(filter_id)
        return await self._visible(principal, saved)

    async def update(
        self,
        principal: Principal,
        filter_id: uuid.UUID,
        changes: FilterChanges,
        *,
        expected_version: int | None,
    ) -> SavedFilter:
        await self._own(principal, await self.get(principal, filter_id))
        async with self.cases.uow() as uow:
            stored = await self._visible(
                principal, await uow.filters.get(filter_id, for_update=True)
            )
            check_version(stored.version, expected_version)
            changed = replace(
                stored,
                name=changes.name if changes.name is not None else stored.name,
                query=changes.query if changes.query is not None else stored.query,
                shared=changes.shared if changes.shared is not None else stored.shared,
                project_id=changes.project_id if changes.project_given else stored.project_id,
                updated_at=datetime.now(UTC),
                version=stored.version + 1,
            )
            await self._check(principal, changed)
            await uow.filters.update(changed)
            await uow.commit()
        return changed

    async def delete(
        self, principal: Principal, filter_id: uuid.UUID, *, expected_version: int | None
    ) -> None:
        saved = await self.get(principal, filter_id)
        if not principal.is_admin:
            await self._own(principal, saved)
        check_version(saved.version, expected_version)
        async with self.cases.uow() as uow:
            await uow.filters.delete(filter_id)
            await uow.commit()

    async def run(
        self, principal: Principal, filter_id: uuid.UUID, request: ListRequest
    ) -> tuple[str | None, ListRequest]:
        """The list a filter stands for: its project (None: every project the caller can
        see) and the list request with its query; the caller runs or exports it."""
        saved = await self.get(principal, filter_id)
        project_ref = str(saved.project_id) if saved.project_id is not None else None
        return project_ref, replace(request, query=saved.query)

    async def tickets(
        self, principal: Principal, filter_id: uuid.UUID, request: ListRequest
    ) -> TicketList:
        project_ref, ran = await self.run(principal, filter_id, request)
        return await self.cases.list_tickets(principal, project_ref, ran)

    async def _visible(self, principal: Principal, saved: SavedFilter | None) -> SavedFilter:
        if saved is None:
            raise FilterNotFoundError()
        if saved.owner_id == principal.user_id:
            return saved
        projects = []
        if saved.shared and saved.project_id is not None:
            access = await self.cases.projects.access(str(saved.project_id), principal)
            projects = [access.project_id] if access is not None else []
        if not saved.visible_to(principal.user_id, projects):
            raise FilterNotFoundError()
        return saved

    @staticmethod
    async def _own(principal: Principal, saved: SavedFilter) -> None:
        if saved.owner_id != principal.user_id:
            raise ForbiddenError("Only the filter's owner may change it.")

    async def _check(self, principal: Principal, saved: SavedFilter) -> None:
        """The filter's project is one the owner can see, and its query compiles there
        (or over every project they can see)."""
        if saved.project_id is not None:
            access = await self.cases.projects.access(str(saved.project_id), principal)
            if access is None:
                raise InvalidFilterProjectError("names no project you can see")
            scope: tuple[uuid.UUID, ...] = (access.project_id,)
        else:
            scope = tuple(await self.cases.projects.visible_projects(principal))
        await QueryCompiler(self.cases.uow, self.cases.projects).compile(
            principal,
            saved.query,
            scope,
            cross_project=saved.project_id is None,
            now=datetime.now(UTC),
        )
