from __future__ import annotations

import httpx
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from fastapi import FastAPI

from bugtracker_auth.api.routes import ANSWERS, internal, keys_router, router
from bugtracker_auth.bootstrap import build
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    ForbiddenError,
    InsufficientScopeError,
    InvalidCredentialsError,
    InvalidPersonalAccessTokenError,
    InvalidRefreshTokenError,
    PersonalAccessTokenNotFoundError,
    RateLimitedError,
    RegistrationClosedError,
    SessionRevokedError,
    ThrottleUnavailableError,
    TooManyTokensError,
    UserNotFoundError,
    WeakPasswordError,
    WrongCurrentPasswordError,
)
from bugtracker_auth.settings import Settings

DOMAIN_ERRORS: dict[type[Exception], int] = {
    EmailTakenError: 409,
    InvalidCredentialsError: 401,
    InvalidRefreshTokenError: 401,
    SessionRevokedError: 401,
    WrongCurrentPasswordError: 403,
    ForbiddenError: 403,
    UserNotFoundError: 404,
    RegistrationClosedError: 403,
    WeakPasswordError: 422,
    RateLimitedError: 429,
    ThrottleUnavailableError: 503,
    InsufficientScopeError: 403,
    TooManyTokensError: 409,
    PersonalAccessTokenNotFoundError: 404,
    InvalidPersonalAccessTokenError: 401,
}


def create_app(
    settings: Settings | None = None,
    *,
    projects_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()

    def wire(app: FastAPI) -> ServiceRuntime:
        runtime, keys, use_cases, personal_tokens = build(
            settings, projects_transport=projects_transport
        )
        app.state.keys = keys
        app.state.use_cases = use_cases
        app.state.personal_tokens = personal_tokens
        return runtime

    app = service_app(
        name="auth",
        wire=wire,
        routers=[router, keys_router, internal],
        domain_errors=DOMAIN_ERRORS,
        log_level=settings.log_level,
        answers=ANSWERS,
    )
    app.state.settings = settings
    app.state.internal_token = settings.internal_token
    return app
