"""Issue 23's acceptance test for delivery: while 500 tickets are filed through the
gateway, every webhooks replica is stopped and started again, and then RabbitMQ is. Every
ticket's `ticket.created` still reaches the receiver at least once, correctly signed, and
a delivery that arrives twice carries the same `webhook-id` and the same bytes."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import httpx
import pytest
from bugtracker_devstack.processes import stop_group
from bugtracker_devstack.stack import Stack, replica_name, wait_until_ready
from bugtracker_testkit import eventually, register_and_login
from bugtracker_testkit.receiver import Received, receiving
from standardwebhooks.webhooks import Webhook as Verifier

pytestmark = [pytest.mark.e2e, pytest.mark.broker_restart, pytest.mark.timeout(600)]

TICKETS = 500
CLIENTS = 10
RESTART_SECONDS = 90.0
ALL_ARRIVE_SECONDS = 180.0


async def restart_webhooks(system: Any, infra: Stack) -> None:
    """Stop every webhooks replica (SIGTERM to its process group), then start them again."""
    names = [replica_name("webhooks", r) for r in range(infra.replicas)]
    for name in names:
        await asyncio.to_thread(stop_group, system.processes[name])
    for replica, name in enumerate(names):
        log = (system.logs / f"{name}.restarted.log").open("wb")
        system.processes[name] = infra.launch("webhooks", log, replica)
    await asyncio.to_thread(wait_until_ready, infra, ("webhooks",), RESTART_SECONDS)


async def test_no_delivery_is_lost_when_the_webhooks_service_and_the_broker_restart(
    system: Any, infra: Stack
) -> None:
    with httpx.Client(base_url=system.gateway_url, timeout=30) as sync_api:
        _, lead = register_and_login(sync_api, "reliable")
    key = "R" + uuid.uuid4().hex[:6].upper()
    created_ids: list[str] = []
    async with (
        httpx.AsyncClient(base_url=system.gateway_url, timeout=60) as api,
        receiving() as receiver,
    ):
        project = await api.post(
            "/api/v1/projects", json={"key": key, "name": "Reliable"}, headers=lead
        )
        assert project.status_code == 201, project.text
        webhook = await api.post(
            f"/api/v1/projects/{key}/webhooks",
            json={"url": f"{receiver.url}/hook", "events": ["ticket.created"]},
            headers=lead,
        )
        assert webhook.status_code == 201, webhook.text
        secret = webhook.json()["secret"]
        numbers = iter(range(TICKETS))

        async def file_tickets() -> None:
            for n in numbers:
                ticket = await api.post(
                    f"/api/v1/projects/{key}/tickets", json={"title": f"T{n}"}, headers=lead
                )
                assert ticket.status_code == 201, ticket.text
                created_ids.append(ticket.json()["id"])

        async def arrived(count: int) -> bool:
            return len(receiver.received) >= count

        filing = [asyncio.create_task(file_tickets()) for _ in range(CLIENTS)]
        try:
            await eventually(lambda: arrived(100), within=60, what="100 deliveries")
            await restart_webhooks(system, infra)
            await eventually(lambda: arrived(250), within=90, what="250 deliveries")
            # The tickets keep coming while the broker is away (their events wait in the
            # outbox), and so do the deliveries already recorded.
            try:
                await asyncio.to_thread(infra.rabbitmq.stop)
            finally:
                await asyncio.to_thread(infra.rabbitmq.start)
            await asyncio.gather(*filing)
        finally:
            for task in filing:
                task.cancel()

        assert len(created_ids) == TICKETS

        async def every_ticket_arrived() -> bool:
            got = {r.json()["data"]["id"] for r in receiver.received}
            return got >= set(created_ids)

        await eventually(
            every_ticket_arrived, within=ALL_ARRIVE_SECONDS, what="every ticket's event"
        )
        received = list(receiver.received)

    by_id: dict[str, list[Received]] = defaultdict(list)
    for delivery in received:
        by_id[delivery.webhook_id].append(delivery)
    assert len(by_id) == TICKETS  # one event per ticket, however often it came
    for copies in by_id.values():
        assert len({c.body for c in copies}) == 1  # a duplicate is the same event
        for copy in copies:
            event = Verifier(secret).verify(copy.body, copy.headers)
            assert event["id"] == copy.webhook_id
    duplicates = sum(len(copies) - 1 for copies in by_id.values())
    print(f"\n{len(received)} deliveries of {TICKETS} events, {duplicates} duplicates")  # noqa: T201

    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=10) as api:

        async def healthy() -> bool:
            return (await api.get("/health")).status_code == 200

        await eventually(healthy, within=60, what="every backend to be ready again")
