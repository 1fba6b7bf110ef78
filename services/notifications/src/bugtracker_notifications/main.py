from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from fastapi import FastAPI

from bugtracker_notifications.api.preference_routes import router as preferences_router
from bugtracker_notifications.api.routes import router
from bugtracker_notifications.bootstrap import build
from bugtracker_notifications.domain.errors import (
    InvalidPreferencesError,
    InvalidUnsubscribeLinkError,
    NotificationNotFoundError,
)
from bugtracker_notifications.domain.notifications import handled_events
from bugtracker_notifications.settings import Settings

EVENTS_QUEUE = "notifications.events"

DOMAIN_ERRORS: dict[type[Exception], int] = {
    NotificationNotFoundError: 404,
    InvalidPreferencesError: 422,
    InvalidUnsubscribeLinkError: 422,
}


def create_app(
    settings: Settings | None = None, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        wired = build(settings, http_transport=http_transport)
        app.state.use_cases = wired.notifications
        app.state.preference_cases = wired.preferences
        # Registered before the broker starts: the queue is declared and consumed on connect.
        wired.runtime.broker.add_consumer(
            EVENTS_QUEUE, handled_events(), wired.notifications.handle_event
        )
        return wired.runtime

    return service_app(
        name="notifications",
        wire=wire,
        routers=[router, preferences_router],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
    )
