"""The in-memory unit of work under every service's unit-test fakes.

An `InMemoryDatabase` holds the committed state, a plain dataclass of Python values. An
`InMemoryUnitOfWork` works on a private deep copy of it, taken when its block is entered:
its changes are visible to nobody else until `commit` makes the copy the database's
state, and leaving the block without `commit` (an error, a return before it) discards
them, as a rolled-back transaction does. A use case commits at most once; a second
`commit`, or one outside the block, is a bug the fake reports.

Each service's `tests/unit/fakes.py` subclasses both with its own state and binds its
repositories in the unit of work's `__init__`; `InMemoryOutbox` is the `EventSink` of the
services whose state has an `outbox` list.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from bugtracker_shared.events import CloudEvent

S = TypeVar("S")


class InMemoryDatabase(Generic[S]):
    """The committed state, and how many transactions committed or rolled back."""

    def __init__(self, state: S) -> None:
        self.state = state
        self.commits = 0
        self.rollbacks = 0

    def snapshot(self) -> S:
        """A deep copy of the committed state (compare it before and after a refusal)."""
        return copy.deepcopy(self.state)


class InMemoryUnitOfWork(Generic[S]):
    """One transaction on an `InMemoryDatabase`: a private copy of its state, made the
    database's state by `commit` (at most once, inside the block) and dropped otherwise."""

    def __init__(self, database: InMemoryDatabase[S]) -> None:
        self.database = database
        self._state: S | None = None
        self.committed = False

    @property
    def state(self) -> S:
        if self._state is None:
            raise RuntimeError("the unit of work is used outside its `async with` block")
        return self._state

    async def __aenter__(self) -> Self:
        if self._state is not None:
            raise RuntimeError("the unit of work is entered twice")
        self._state = self.database.snapshot()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.database.rollbacks += 1
        self._state = None

    async def commit(self) -> None:
        if self.committed:
            raise RuntimeError("the unit of work commits twice")
        self.database.state = copy.deepcopy(self.state)
        self.database.commits += 1
        self.committed = True


class HasOutbox(Protocol):
    """A state with an outbox table: the events committed with it, in order."""

    outbox: list[CloudEvent]


T = TypeVar("T", bound=HasOutbox)


class InMemoryOutbox(Generic[T]):
    """The event sink: events land in the transaction's outbox, kept only if it commits."""

    def __init__(self, uow: InMemoryUnitOfWork[T]) -> None:
        self._uow = uow

    async def add(self, event: CloudEvent) -> None:
        self._uow.state.outbox.append(event)

    async def add_many(self, events: Sequence[CloudEvent]) -> None:
        self._uow.state.outbox.extend(events)


class InMemoryOutboxDatabase(InMemoryDatabase[T]):
    """A database whose state has an outbox: the events committed so far, for tests."""

    @property
    def events(self) -> list[CloudEvent]:
        return list(self.state.outbox)

    def event_names(self) -> list[str]:
        return [event.name for event in self.state.outbox]
