"""Wires the real adapters into the use cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httpx
from bugtracker_shared.http_client import service_client
from bugtracker_shared.runtime import ServiceRuntime, http_jwks_fetcher
from bugtracker_shared.tokens import TokenVerifier

from bugtracker_notifications.application.use_cases import NotificationUseCases
from bugtracker_notifications.infrastructure.feed import ListeningFeed, listener_connection
from bugtracker_notifications.infrastructure.tables import SCHEMA
from bugtracker_notifications.infrastructure.uow import NotificationsUnitOfWork
from bugtracker_notifications.settings import Settings

SERVICE = "notifications"


@dataclass
class NotificationsRuntime(ServiceRuntime):
    """The service's runtime, with the live feed's listener: started with the runtime
    (a job), and a readiness check that fails while it is not listening."""

    feed: ListeningFeed | None = None

    def health_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        checks = super().health_checks()
        if self.feed is not None:
            checks["notification_feed"] = self.feed.check
        return checks


def build(
    settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> tuple[NotificationsRuntime, NotificationUseCases]:
    """`http_transport` replaces the aiohttp transport of the JWKS client (tests pass an
    `httpx.MockTransport` that serves their own keys)."""
    auth_client = service_client(settings.jwks_url, transport=http_transport)
    # `create` builds an instance of the class it is called on.
    runtime = cast(
        NotificationsRuntime,
        NotificationsRuntime.create(
            name=SERVICE,
            settings=settings,
            schema=SCHEMA,
            outbox=None,  # this service publishes nothing
            verifier=TokenVerifier(
                http_jwks_fetcher(auth_client, settings.jwks_url),
                issuer=settings.issuer,
                audience=settings.audience,
            ),
        ),
    )
    runtime.http_clients.append(auth_client)
    feed = ListeningFeed(listener_connection(settings.database_url))
    runtime.feed = feed
    runtime.jobs.append(feed.run)
    use_cases = NotificationUseCases(
        uow=lambda: NotificationsUnitOfWork(runtime.session_factory, runtime.after_commit),
        feed=feed,
    )
    return runtime, use_cases
