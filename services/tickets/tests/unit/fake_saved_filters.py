"""In-memory fake of the SavedFilterRepository port (tests only)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bugtracker_tickets.domain.saved_filters import SavedFilter

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork


class FakeSavedFilterRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _stored(self) -> dict[uuid.UUID, SavedFilter]:
        return self._uow.state.saved_filters

    async def add(self, saved: SavedFilter) -> None:
        if saved.id in self._stored:
            raise ValueError(f"duplicate filter id {saved.id}")
        self._stored[saved.id] = copy.deepcopy(saved)

    async def get(self, filter_id: uuid.UUID, *, for_update: bool = False) -> SavedFilter | None:
        found = self._stored.get(filter_id)
        return copy.deepcopy(found) if found else None

    async def update(self, saved: SavedFilter) -> None:
        if saved.id in self._stored:
            self._stored[saved.id] = copy.deepcopy(saved)

    async def delete(self, filter_id: uuid.UUID) -> None:
        self._stored.pop(filter_id, None)

    async def visible(
        self,
        user_id: uuid.UUID,
        projects: Sequence[uuid.UUID],
        *,
        project_id: uuid.UUID | None,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> list[SavedFilter]:
        found = sorted(
            (
                f
                for f in self._stored.values()
                if (f.owner_id == user_id or (f.shared and f.project_id in projects))
                and (project_id is None or f.project_id == project_id)
                and (after is None or (f.name, f.id) > after)
            ),
            key=lambda f: (f.name, f.id),
        )
        return copy.deepcopy(found[:limit])
