"""In-memory fake of the MilestoneRepository port (tests only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.tickets.tests.unit.fakes import FakeUnitOfWork


class FakeMilestoneRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow
