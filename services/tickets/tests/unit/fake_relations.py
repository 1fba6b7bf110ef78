"""In-memory fake of the RelationRepository port (tests only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork


class FakeRelationRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
