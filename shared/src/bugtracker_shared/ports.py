"""Ports every service's application layer declares the same way."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from bugtracker_shared.events import CloudEvent


class EventSink(Protocol):
    """Where a use case records events: the outbox, in the unit of work's transaction."""

    async def add(self, event: CloudEvent) -> None: ...
    async def add_many(self, events: Sequence[CloudEvent]) -> None:
        """The events in this order, written together (a bulk change's)."""
        ...


class Transaction(Protocol):
    """A unit of work: leaving the block without `commit` rolls everything back."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
