"""Wires the real adapters into the use cases."""

from __future__ import annotations

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


def build(
    settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> tuple[ServiceRuntime, NotificationUseCases]:
    """`http_transport` replaces the aiohttp transport of the JWKS client (tests pass an
    `httpx.MockTransport` that serves their own keys)."""
    auth_client = service_client(settings.jwks_url, transport=http_transport)
    runtime = ServiceRuntime.create(
        name=SERVICE,
        settings=settings,
        schema=SCHEMA,
        outbox=None,  # this service publishes nothing
        verifier=TokenVerifier(
            http_jwks_fetcher(auth_client, settings.jwks_url),
            issuer=settings.issuer,
            audience=settings.audience,
        ),
    )
    runtime.http_clients.append(auth_client)
    feed = ListeningFeed(listener_connection(settings.database_url))
    # The live feed's listener: started with the runtime, not ready while not listening.
    runtime.jobs.append(feed.run)
    runtime.readiness["notification_feed"] = feed.check
    use_cases = NotificationUseCases(
        uow=lambda: NotificationsUnitOfWork(runtime.session_factory, runtime.after_commit),
        feed=feed,
    )
    return runtime, use_cases
