"""Unit-test fixtures: the notifications use cases on in-memory fakes of their ports.

The fakes live in `fakes.py` beside this file. pytest imports test files with
`--import-mode=importlib` under their path from the repository root, so test modules and
this file import it as `services.notifications.tests.unit.fakes` (ruff bans relative
imports).
"""

from __future__ import annotations

import pytest

from services.notifications.tests.unit.fakes import NotificationsWorld


@pytest.fixture
def world() -> NotificationsWorld:
    """The real NotificationUseCases on fresh in-memory fakes, with a clock the test moves."""
    return NotificationsWorld()
