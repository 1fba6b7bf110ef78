from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from fastapi import FastAPI

from bugtracker_webhooks.api.routes import ANSWERS, VERSIONED, router
from bugtracker_webhooks.application.delivery import HANDLED_EVENTS
from bugtracker_webhooks.bootstrap import build
from bugtracker_webhooks.domain.errors import (
    DeliveryNotFoundError,
    InvalidWebhookError,
    NotAllowedError,
    ProjectNotFoundError,
    WebhookLimitError,
    WebhookNotFoundError,
)
from bugtracker_webhooks.infrastructure.egress import Resolver
from bugtracker_webhooks.settings import Settings

EVENTS_QUEUE = "webhooks.events"

DOMAIN_ERRORS: dict[type[Exception], int] = {
    WebhookNotFoundError: 404,
    ProjectNotFoundError: 404,
    DeliveryNotFoundError: 404,
    NotAllowedError: 403,
    InvalidWebhookError: 422,
    WebhookLimitError: 409,
}


def create_app(
    settings: Settings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        wired = build(settings, http_transport=http_transport, resolver=resolver)
        app.state.use_cases = wired.webhooks
        app.state.dispatcher = wired.dispatcher
        app.state.recorder = wired.recorder
        app.state.internal_token = settings.internal_token
        # Registered before the broker starts: the queue is declared and consumed on connect.
        # Events of different subjects are recorded concurrently; the consumer handles
        # one subject's events one at a time, in the order the queue delivers them.
        wired.runtime.broker.add_consumer(EVENTS_QUEUE, HANDLED_EVENTS, wired.recorder.handle_event)
        return wired.runtime

    return service_app(
        name="webhooks",
        wire=wire,
        routers=[router],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
        answers=ANSWERS,
        versioned=VERSIONED,
    )
