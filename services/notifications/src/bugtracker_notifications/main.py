from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from fastapi import FastAPI

from bugtracker_notifications.api.routes import router
from bugtracker_notifications.bootstrap import build
from bugtracker_notifications.domain.errors import NotificationNotFoundError
from bugtracker_notifications.domain.notifications import handled_events
from bugtracker_notifications.settings import Settings

EVENTS_QUEUE = "notifications.events"

DOMAIN_ERRORS: dict[type[Exception], int] = {
    NotificationNotFoundError: 404,
}


def create_app(
    settings: Settings | None = None, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        runtime, use_cases = build(settings, http_transport=http_transport)
        app.state.use_cases = use_cases
        # Registered before the broker starts: the queue is declared and consumed on connect.
        runtime.broker.add_consumer(EVENTS_QUEUE, handled_events(), use_cases.handle_event)
        return runtime

    return service_app(
        name="notifications",
        wire=wire,
        routers=[router],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
    )
