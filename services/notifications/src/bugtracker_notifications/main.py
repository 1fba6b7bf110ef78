from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from bugtracker_shared.logs import configure_logging
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.web import RequestIdMiddleware, health_router
from fastapi import FastAPI

from bugtracker_notifications.api.routes import router
from bugtracker_notifications.bootstrap import build
from bugtracker_notifications.domain.errors import NotificationNotFoundError
from bugtracker_notifications.domain.notifications import handled_events
from bugtracker_notifications.settings import Settings

EVENTS_QUEUE = "notifications.events"

DOMAIN_ERRORS: dict[type[Exception], int] = {
    NotificationNotFoundError: 404,
    InvalidCursorError: 422,
}


def create_app(
    settings: Settings | None = None, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging("notifications", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime, use_cases = build(settings, http_transport=http_transport)
        app.state.runtime = runtime
        app.state.use_cases = use_cases
        app.state.token_verifier = runtime.verifier
        # Registered before the broker starts: the queue is declared and consumed on connect.
        runtime.broker.add_consumer(EVENTS_QUEUE, handled_events(), use_cases.handle_event)
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title="Bugtracker notifications", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app, DOMAIN_ERRORS)
    app.include_router(router)
    app.include_router(health_router(lambda request: request.app.state.runtime.health_checks()))
    return app
