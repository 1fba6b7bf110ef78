"""Unit-test fixtures: the auth use cases on in-memory fakes of their ports.

The fakes live in `fakes.py` beside this file. pytest imports test files with
`--import-mode=importlib` under their path from the repository root, so test modules and
this file import it as `services.auth.tests.unit.fakes` (ruff bans relative imports).
"""

from __future__ import annotations

import pytest

from services.auth.tests.unit.fakes import AuthWorld


@pytest.fixture
def world() -> AuthWorld:
    """The real AuthUseCases on fresh in-memory fakes."""
    return AuthWorld()
