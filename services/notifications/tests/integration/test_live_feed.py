"""The live feed across replicas, against the run's PostgreSQL (docs/adr/0036): a
notification committed by any replica reaches the open streams of its user on every
replica; a rollback announces nothing; a lost LISTEN connection closes the local streams
and is made again."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_notifications.application.ports import Subscription
from bugtracker_notifications.application.use_cases import NotificationUseCases
from bugtracker_notifications.domain.notifications import SUMMARY_MAX_CHARS, Notification
from bugtracker_notifications.infrastructure.feed import (
    FeedNotListeningError,
    ListeningFeed,
    listener_connection,
)
from bugtracker_notifications.infrastructure.uow import NotificationsUnitOfWork
from bugtracker_notifications.main import create_app
from bugtracker_notifications.settings import Settings
from bugtracker_shared.events import CloudEvent
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_testkit import app_client, eventually
from fastapi import FastAPI

pytestmark = pytest.mark.integration

Assigned = Callable[..., CloudEvent]
# How long a notification may take to reach a stream before the test fails (a bound on a
# wait for an event, not a pause).
DELIVERED_WITHIN = 10.0


def runtime_of(app: FastAPI) -> ServiceRuntime:
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime


def feed_of(app: FastAPI) -> ListeningFeed:
    feed = use_cases_of(app).feed
    assert isinstance(feed, ListeningFeed)
    return feed


def use_cases_of(app: FastAPI) -> NotificationUseCases:
    cases = app.state.use_cases
    assert isinstance(cases, NotificationUseCases)
    return cases


class Stream:
    """A subscription read as the SSE route reads it."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._items = aiter(subscription)

    async def next(self) -> Notification:
        return await asyncio.wait_for(anext(self._items), DELIVERED_WITHIN)

    async def ended(self) -> bool:
        """Whether the stream ends (after what was queued) rather than yields more."""
        try:
            await asyncio.wait_for(anext(self._items), DELIVERED_WITHIN)
        except StopAsyncIteration:
            return True
        return False


async def ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health/ready")).status_code == httpx.codes.OK


@pytest.fixture
async def replica_b(infra: Stack, keys: Any, client: httpx.AsyncClient) -> AsyncIterator[FastAPI]:
    """A second notifications app on the same database and queue (`client` runs the
    first, `app`, and waits until it is ready)."""
    second = create_app(
        Settings(
            database_url=infra.database_url("notifications"),
            amqp_url=infra.amqp_url("notifications"),
            jwks_url="http://auth.test/.well-known/jwks.json",
        ),
        http_transport=keys.transport(),
    )
    async with app_client(second) as second_client:
        await eventually(lambda: ready(second_client), what="the second replica to be ready")
        yield second


def notification(
    user_id: uuid.UUID, *, summary: str = "You were assigned BUG-1: x"
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        type="ticket.assigned",
        event_id=uuid.uuid4(),
        actor_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        ticket_id=uuid.uuid4(),
        ticket_key="BUG-1",
        summary=summary,
        created_at=datetime.now(UTC),
    )


async def add(app: FastAPI, notifications: list[Notification], *, commit: bool = True) -> None:
    """Through the replica's own unit of work, as its consumer writes them."""
    runtime = runtime_of(app)
    async with NotificationsUnitOfWork(runtime.session_factory) as uow:
        await uow.notifications.add_many(notifications)
        if commit:
            await uow.commit()


async def test_a_notification_made_by_one_replica_reaches_the_streams_of_both(
    app: FastAPI, replica_b: FastAPI, assigned: Assigned
) -> None:
    user = uuid.uuid4()
    on_a = Stream(use_cases_of(app).subscribe(user))
    on_b = Stream(use_cases_of(replica_b).subscribe(user))
    other = uuid.uuid4()
    someone_else = Stream(use_cases_of(app).subscribe(other))

    event = assigned(actor_id=uuid.uuid4(), assignee_id=user, title="Crash on save")
    await use_cases_of(replica_b).handle_event(event)  # replica B's consumer

    received = await on_a.next()
    assert (received.user_id, received.event_id) == (user, event.id)
    assert received.summary == "You were assigned BUG-1: Crash on save"
    assert await on_b.next() == received
    listed = await use_cases_of(app).list_notifications(
        user, unread_only=False, limit=10, cursor=None
    )
    assert listed.items == [received]  # the same as the list, field for field
    # Another user's stream heard nothing: the next thing it sees is its own.
    await add(app, [mine := notification(other)])
    assert (await someone_else.next()).id == mine.id


async def test_a_rolled_back_transaction_announces_nothing(
    app: FastAPI, replica_b: FastAPI
) -> None:
    user = uuid.uuid4()
    stream = Stream(use_cases_of(app).subscribe(user))
    rolled_back = notification(user)
    await add(replica_b, [rolled_back], commit=False)
    # NOTIFYs arrive in commit order: had the rollback announced anything, it would come
    # before this one.
    committed = notification(user)
    await add(replica_b, [committed])
    assert (await stream.next()).id == committed.id


async def test_the_largest_notification_fits_in_one_announcement(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = uuid.uuid4()
    stream = Stream(use_cases_of(app).subscribe(user))
    # Control characters are the longest in JSON (6 bytes each), e.g. 600 of them.
    largest = dataclasses.replace(
        notification(user, summary="\x01" * SUMMARY_MAX_CHARS), ticket_key="\x01" * 64
    )
    await add(app, [largest])
    assert await stream.next() == largest


async def test_a_lost_listener_closes_the_local_streams_then_listens_again(
    app: FastAPI,
    client: httpx.AsyncClient,
    replica_b: FastAPI,
    superuser_db: asyncpg.Connection,
) -> None:
    user = uuid.uuid4()
    feed = feed_of(app)
    stream = Stream(use_cases_of(app).subscribe(user))
    before = feed.listener_pid
    assert before is not None

    assert await superuser_db.fetchval("SELECT pg_terminate_backend($1)", before)

    # Whatever was committed while it was away is lost to that stream: it is closed, and
    # the client reconnects and lists.
    assert await stream.ended()

    async def listening_again() -> bool:
        return feed.listening and feed.listener_pid != before and await ready(client)

    await eventually(listening_again, what="the feed to listen on a new connection")
    again = Stream(use_cases_of(app).subscribe(user))
    later = notification(user)
    await add(replica_b, [later])
    assert (await again.next()).id == later.id


async def test_streams_opened_while_the_listener_is_away_are_closed_when_it_listens(
    infra: Stack, app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The feed alone, on a connection the test lets through: a stream subscribed before
    the LISTEN is closed once it listens (it may have missed a commit)."""
    gate = asyncio.Event()
    connect = listener_connection(infra.database_url("notifications"))

    async def gated() -> asyncpg.Connection:
        await gate.wait()
        return await connect()

    feed = ListeningFeed(gated)
    listener = asyncio.create_task(feed.run())
    try:
        early = Stream(feed.subscribe(uuid.uuid4()))
        with pytest.raises(FeedNotListeningError):
            await feed.check()  # readiness fails until it listens
        gate.set()
        assert await early.ended()
        await feed.check()
        user = uuid.uuid4()
        stream = Stream(feed.subscribe(user))
        await add(app, [sent := notification(user)])
        assert (await stream.next()).id == sent.id
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    assert not feed.listening
