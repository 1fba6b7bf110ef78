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

from bugtracker_projects.api.routes import router
from bugtracker_projects.bootstrap import build
from bugtracker_projects.domain.errors import (
    AlreadyMemberError,
    ForbiddenError,
    LastOwnerError,
    MemberNotFoundError,
    ProjectArchivedError,
    ProjectKeyTakenError,
    ProjectNotFoundError,
    RestoreExpiredError,
    UnknownUserError,
)
from bugtracker_projects.settings import Settings

DOMAIN_ERRORS: dict[type[Exception], int] = {
    ProjectNotFoundError: 404,
    MemberNotFoundError: 404,
    ForbiddenError: 403,
    ProjectKeyTakenError: 409,
    AlreadyMemberError: 409,
    UnknownUserError: 422,
    InvalidCursorError: 422,
    LastOwnerError: 409,
    ProjectArchivedError: 409,
    RestoreExpiredError: 409,
    PreconditionFailedError: 412,
}


def create_app(
    settings: Settings | None = None,
    *,
    auth_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> FastAPI:
    settings = settings or Settings()
    configure_logging("projects", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime, use_cases = build(
            settings, auth_transport=auth_transport, jwks_fetcher=jwks_fetcher
        )
        app.state.runtime = runtime
        app.state.use_cases = use_cases
        app.state.token_verifier = runtime.verifier
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title="Bugtracker projects", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app, DOMAIN_ERRORS)
    app.include_router(router)
    app.include_router(health_router(lambda request: request.app.state.runtime.health_checks()))
    return app
