"""A broker that goes away while the connection's channels and queues are being set up
(a restart at the wrong moment) means another attempt, not a dead connection task: found
by the five-restarts reliability test, made deterministic here."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.messaging import Broker

pytestmark = pytest.mark.integration


async def test_a_failure_while_setting_up_is_retried(infra: Stack) -> None:
    broker = Broker(infra.amqp_url("tickets"), connection_name="test-setup-retry")
    real_set_up = broker._set_up
    attempts = 0

    async def flaky_set_up(connection: Any) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # as when RabbitMQ shuts down while a channel opens
            raise aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - shutdown")
        await real_set_up(connection)

    broker._set_up = flaky_set_up  # type: ignore[method-assign]
    broker.start()
    try:
        await asyncio.wait_for(broker.wait_connected(), timeout=30)
        assert attempts == 2
        assert broker.is_ready
    finally:
        await broker.close()
