from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bugtracker_shared.logs import configure_logging
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.web import RequestIdMiddleware, health_router
from fastapi import FastAPI

from bugtracker_auth.api.routes import internal_router, keys_router, router
from bugtracker_auth.bootstrap import build
from bugtracker_auth.domain.errors import (
    EmailTakenError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RateLimitedError,
    RegistrationClosedError,
    SessionRevokedError,
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
    InvalidCursorError: 422,
    RateLimitedError: 429,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("auth", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime, keys, use_cases = build(settings)
        app.state.runtime = runtime
        app.state.keys = keys
        app.state.use_cases = use_cases
        app.state.token_verifier = runtime.verifier
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title="Bugtracker auth", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app, DOMAIN_ERRORS)
    app.include_router(router)
    app.include_router(keys_router)
    app.include_router(internal_router)
    app.include_router(health_router(lambda request: request.app.state.runtime.health_checks()))
    return app
