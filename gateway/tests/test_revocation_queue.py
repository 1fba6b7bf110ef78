"""The revocation queue of a gateway replica, on the real RabbitMQ of the test run: each
replica has its own, so the queue of a replica that is gone must not stay behind."""

from __future__ import annotations

import uuid

import aio_pika
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity
from bugtracker_devstack.stack import Stack
from bugtracker_gateway.main import create_app
from bugtracker_gateway.settings import Settings
from bugtracker_testkit import app_client, eventually

# The run's real RabbitMQ (the `infra` fixture starts it, with PostgreSQL).
pytestmark = pytest.mark.integration


async def test_the_queue_of_a_gateway_that_is_gone_is_deleted_by_the_broker(
    infra: Stack, settings: Settings
) -> None:
    queue = f"gateway.revocations.test-{uuid.uuid4().hex[:12]}"
    app = create_app(
        settings.model_copy(
            update={
                "amqp_url": infra.amqp_url("gateway"),
                "revocation_queue": queue,
                "revocation_queue_expires_seconds": 1,
            }
        )
    )
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:

        async def declared(name: str) -> bool:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                return False
            await channel.close()
            return True

        async with app_client(app) as gateway:

            async def consuming() -> bool:
                return bool(app.state.revocations.state == "ok")

            await eventually(consuming, what="the gateway consuming its revocation queue")
            assert (await gateway.get("/health/ready")).status_code == 200
            assert await declared(queue)

        async def queue_gone() -> bool:
            return not await declared(queue)

        async def dead_letter_queue_gone() -> bool:
            return not await declared(f"{queue}.dlq")

        # Unused for longer than its x-expires: RabbitMQ deletes both queues.
        await eventually(queue_gone, within=30, what="the broker to delete the queue")
        await eventually(dead_letter_queue_gone, within=30, what="the broker to delete the dlq")
    finally:
        await connection.close()


async def test_a_queue_left_by_an_earlier_version_without_expiry_is_replaced(
    infra: Stack, settings: Settings
) -> None:
    queue = f"gateway.revocations.test-{uuid.uuid4().hex[:12]}"
    connection = await aio_pika.connect(infra.rabbitmq.url)
    try:
        channel = await connection.channel()
        for name in (f"{queue}.dlq", queue):  # as the earlier version declared them
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.close()
        app = create_app(
            settings.model_copy(
                update={
                    "amqp_url": infra.amqp_url("gateway"),
                    "revocation_queue": queue,
                    "revocation_queue_expires_seconds": 1,
                }
            )
        )
        async with app_client(app):

            async def consuming() -> bool:
                return bool(app.state.revocations.state == "ok")

            await eventually(consuming, what="the gateway consuming its replaced queue")

        async def queue_gone() -> bool:
            probe = await connection.channel()
            try:
                await probe.declare_queue(queue, passive=True)
            except ChannelNotFoundEntity:
                return True
            await probe.close()
            return False

        # Replaced with x-expires: the broker deletes it once the gateway is gone.
        await eventually(queue_gone, within=30, what="the broker to delete the replaced queue")
    finally:
        await connection.close()
