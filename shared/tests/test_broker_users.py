"""The RabbitMQ users of deploy/rabbitmq (loaded into the test broker by devstack): one
component's credentials can neither publish another's events nor read another's queue."""

from __future__ import annotations

import aio_pika
import aiormq
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_shared.events import CONTENT_TYPE, EXCHANGE
from bugtracker_shared.messaging import declare_consumer_queue, declare_exchange

pytestmark = pytest.mark.integration

REFUSED = (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)


async def publish_as(infra: Stack, component: str, routing_key: str) -> None:
    connection = await aio_pika.connect(infra.amqp_url(component))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(b"{}", content_type=CONTENT_TYPE), routing_key=routing_key
        )
    finally:
        await connection.close()


@pytest.fixture
async def events_exchange(infra: Stack) -> None:
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel()
        exchange = await declare_exchange(channel)
        await declare_consumer_queue(
            channel, exchange, "gateway.revocations", ["auth.session_revoked"]
        )
    finally:
        await connection.close()


@pytest.mark.usefixtures("events_exchange")
@pytest.mark.parametrize(
    ("component", "own", "foreign"),
    [
        ("tickets", "ticket.assigned", "project.member_added"),
        ("projects", "project.member_added", "ticket.assigned"),
        ("auth", "auth.session_revoked", "project.deleted"),
        ("projects", "project.created", "auth.session_revoked"),
        ("tickets", "ticket.created", "user.deactivated"),
        ("webhooks", "webhook.created", "ticket.created"),
        ("webhooks", "webhook.disabled", "project.member_removed"),
        ("tickets", "ticket.created", "webhook.disabled"),
    ],
)
async def test_a_service_publishes_only_its_own_event_types(
    infra: Stack, component: str, own: str, foreign: str
) -> None:
    await publish_as(infra, component, own)
    with pytest.raises(REFUSED):
        await publish_as(infra, component, foreign)


@pytest.mark.usefixtures("events_exchange")
@pytest.mark.parametrize("component", ["notifications", "gateway"])
async def test_a_consumer_cannot_publish_events(infra: Stack, component: str) -> None:
    with pytest.raises(REFUSED):
        await publish_as(infra, component, "auth.session_revoked")


@pytest.mark.usefixtures("events_exchange")
@pytest.mark.parametrize("component", ["notifications", "tickets", "auth", "projects", "webhooks"])
async def test_only_the_gateway_reads_its_revocation_queue(infra: Stack, component: str) -> None:
    connection = await aio_pika.connect(infra.amqp_url(component))
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("gateway.revocations", ensure=False)
        with pytest.raises(REFUSED):
            await queue.get(fail=False)
    finally:
        await connection.close()
    gateway = await aio_pika.connect(infra.amqp_url("gateway"))
    try:
        queue = await (await gateway.channel()).get_queue("gateway.revocations", ensure=False)
        await queue.get(fail=False)  # allowed (and empty)
    finally:
        await gateway.close()


@pytest.mark.usefixtures("events_exchange")
async def test_a_consumer_binds_only_the_keys_it_consumes(infra: Stack) -> None:
    connection = await aio_pika.connect(infra.amqp_url("gateway"))
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        queue = await channel.get_queue("gateway.revocations", ensure=False)
        await queue.bind(exchange, routing_key="user.deactivated")
        with pytest.raises(REFUSED):
            await queue.bind(exchange, routing_key="ticket.assigned")
    finally:
        await connection.close()


@pytest.mark.usefixtures("events_exchange")
async def test_webhooks_binds_the_events_it_delivers_and_not_its_own(infra: Stack) -> None:
    connection = await aio_pika.connect(infra.amqp_url("webhooks"))
    try:
        channel = await connection.channel()
        exchange = await declare_exchange(channel)
        # Not `webhooks.events`: the service declares that one itself in the e2e tests.
        queue = await declare_consumer_queue(
            channel, exchange, "webhooks.broker-test", ["ticket.created", "project.deleted"]
        )
        await queue.bind(exchange, routing_key="milestone.created")
        with pytest.raises(REFUSED):
            await queue.bind(exchange, routing_key="auth.session_revoked")
    finally:
        await connection.close()
    connection = await aio_pika.connect(infra.amqp_url("webhooks"))
    try:
        channel = await connection.channel()
        for name in ("webhooks.broker-test", "webhooks.broker-test.dlq"):
            await channel.queue_delete(name)
    finally:
        await connection.close()
