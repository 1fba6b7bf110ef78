from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from bugtracker_shared.tokens import JwksFetcher
from fastapi import FastAPI

from bugtracker_tickets.api.routes import ANSWERS, VERSIONED, router
from bugtracker_tickets.bootstrap import build
from bugtracker_tickets.domain.errors import (
    AssigneeNotMemberError,
    CommentNotFoundError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    ProjectArchivedError,
    ProjectNotFoundError,
    ResolutionRequiredError,
    TicketNotFoundError,
)
from bugtracker_tickets.settings import Settings

DOMAIN_ERRORS: dict[type[Exception], int] = {
    TicketNotFoundError: 404,
    ProjectNotFoundError: 404,
    ForbiddenError: 403,
    ProjectArchivedError: 409,
    AssigneeNotMemberError: 422,
    CommentNotFoundError: 404,
    InvalidTransitionError: 409,
    ResolutionRequiredError: 422,
    IdempotencyKeyReusedError: 422,
}


def create_app(
    settings: Settings | None = None,
    *,
    projects_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        runtime, use_cases, comment_cases = build(
            settings, projects_transport=projects_transport, jwks_fetcher=jwks_fetcher
        )
        app.state.use_cases = use_cases
        app.state.comment_cases = comment_cases
        return runtime

    return service_app(
        name="tickets",
        wire=wire,
        routers=[router],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
        answers=ANSWERS,
        versioned=VERSIONED,
    )
