"""The resources one service process holds for its lifetime, created in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bugtracker_shared import tracing
from bugtracker_shared.db import create_engine, ping
from bugtracker_shared.messaging import Broker, BrokerUnavailableError
from bugtracker_shared.metrics import observe_pool
from bugtracker_shared.outbox import OutboxRelay, OutboxSettings
from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.tokens import TokenVerifier


def http_jwks_fetcher(client: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[Any]]:
    async def fetch() -> Any:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()

    return fetch


@dataclass
class ServiceRuntime:
    name: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    broker: Broker
    relay: OutboxRelay | None
    verifier: TokenVerifier
    http_clients: list[httpx.AsyncClient] = field(default_factory=list)
    # Start-up jobs run in the background once the runtime starts (e.g. seeding a view),
    # cancelled at shutdown if still running.
    jobs: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # A service's own readiness checks besides the database, broker and consumers (e.g.
    # auth's throttle store, notifications' feed listener), and what to close at shutdown
    # after the shared resources.
    readiness: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        settings: ServiceSettings,
        schema: str,
        outbox: Table | None,
        verifier: TokenVerifier,
    ) -> ServiceRuntime:
        engine = create_engine(
            settings.database_url, schema=schema, pool_size=settings.db_pool_size
        )
        broker = Broker(settings.amqp_url, connection_name=f"bugtracker-{name}")
        relay = (
            OutboxRelay(engine, outbox, broker, OutboxSettings()) if outbox is not None else None
        )
        return cls(
            name=name,
            engine=engine,
            session_factory=async_sessionmaker(engine, expire_on_commit=False),
            broker=broker,
            relay=relay,
            verifier=verifier,
        )

    def after_commit(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def instrument(self) -> None:
        """Trace this runtime's SQL and outgoing HTTP calls (when tracing is on)."""
        if not tracing.tracing_enabled():
            return
        tracing.instrument_engine(self.engine)
        for client in self.http_clients:
            tracing.instrument_http_client(client)

    async def observe(self) -> None:
        """Read the gauges Prometheus is about to scrape: pool, outbox, queue depths."""
        observe_pool(self.engine)
        if self.relay is not None:
            await self.relay.observe_backlog()
        await self.broker.observe_queue_depths()

    def start(self) -> None:
        self.broker.start()
        if self.relay is not None:
            self.relay.start()
        self._tasks = [asyncio.create_task(job()) for job in self.jobs]

    async def close(self) -> None:
        try:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.relay is not None:
                await self.relay.stop()
            await self.broker.close()
            for client in self.http_clients:
                await client.aclose()
            await self.engine.dispose()
        finally:
            for close in self.closers:
                await close()

    def health_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        async def database() -> None:
            await ping(self.engine)

        async def broker() -> None:
            if not self.broker.is_ready:
                raise BrokerUnavailableError("not connected")

        async def consumers() -> None:
            # A consumer holding a delivery unsettled for long has stopped making progress.
            self.broker.check_consumers()

        return {"database": database, "broker": broker, "consumers": consumers} | self.readiness
