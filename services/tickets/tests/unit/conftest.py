"""Unit-test fixtures: the tickets use cases on in-memory fakes of their ports.

The fakes live in `fakes.py` beside this file. pytest imports test files with
`--import-mode=importlib` under their path from the repository root, so test modules and
this file import it as `services.tickets.tests.unit.fakes` (ruff bans relative imports).
"""

from __future__ import annotations

import pytest

from services.tickets.tests.unit.fakes import Team, TicketsWorld


@pytest.fixture
def world() -> TicketsWorld:
    """The real TicketUseCases and CommentUseCases on fresh in-memory fakes."""
    return TicketsWorld()


@pytest.fixture
def team(world: TicketsWorld) -> Team:
    """Project BUG in `world`, with one member of each role and an outsider."""
    return world.team()
