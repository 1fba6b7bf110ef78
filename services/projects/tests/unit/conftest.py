"""Unit-test fixtures: the projects use cases on in-memory fakes of their ports.

The fakes live in `fakes.py` beside this file. pytest imports test files with
`--import-mode=importlib` under their path from the repository root, so test modules and
this file import it as `services.projects.tests.unit.fakes` (ruff bans relative imports).
"""

from __future__ import annotations

import pytest

from services.projects.tests.unit.fakes import ProjectsWorld


@pytest.fixture
def world() -> ProjectsWorld:
    """The real ProjectUseCases on fresh in-memory fakes."""
    return ProjectsWorld()
