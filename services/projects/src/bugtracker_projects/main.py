from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from bugtracker_shared.tokens import JwksFetcher
from fastapi import FastAPI

from bugtracker_projects.api.routes import ANSWERS, VERSIONED, internal, router
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
    LastOwnerError: 409,
    ProjectArchivedError: 409,
    RestoreExpiredError: 409,
}


def create_app(
    settings: Settings | None = None,
    *,
    auth_transport: httpx.AsyncBaseTransport | None = None,
    jwks_fetcher: JwksFetcher | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        runtime, use_cases = build(
            settings, auth_transport=auth_transport, jwks_fetcher=jwks_fetcher
        )
        app.state.use_cases = use_cases
        app.state.internal_token = settings.internal_token
        return runtime

    return service_app(
        name="projects",
        wire=wire,
        routers=[router, internal],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
        answers=ANSWERS,
        versioned=VERSIONED,
    )
