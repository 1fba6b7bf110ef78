"""Unit-test fixtures: the webhooks use cases on in-memory fakes of their ports (the
fakes live in `fakes.py` beside this file, imported by its path from the repository root)."""

from __future__ import annotations

import pytest

from services.webhooks.tests.unit.fakes import WebhooksWorld


@pytest.fixture
def world() -> WebhooksWorld:
    return WebhooksWorld()
