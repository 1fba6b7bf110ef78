from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from bugtracker_shared.conditions import PreconditionFailedError
from bugtracker_shared.logs import configure_logging
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.tokens import JwksFetcher
from bugtracker_shared.web import RequestIdMiddleware, health_router
from fastapi import FastAPI

from bugtracker_tickets.api.routes import router
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
    InvalidCursorError: 422,
    CommentNotFoundError: 404,
    InvalidTransitionError: 409,
    ResolutionRequiredError: 422,
    IdempotencyKeyReusedError: 422,
    PreconditionFailedError: 412,
}


def create_app(
    settings: Settings | None = None,
    *,
    projects_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> FastAPI:
    settings = settings or Settings()
    configure_logging("tickets", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime, use_cases, comment_cases = build(
            settings, projects_transport=projects_transport, jwks_fetcher=jwks_fetcher
        )
        app.state.runtime = runtime
        app.state.use_cases = use_cases
        app.state.comment_cases = comment_cases
        app.state.token_verifier = runtime.verifier
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title="Bugtracker tickets", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app, DOMAIN_ERRORS)
    app.include_router(router)
    app.include_router(health_router(lambda request: request.app.state.runtime.health_checks()))
    return app
