"""The FastAPI app every Bugtracker service is: request ids, problem+json, health
endpoints and one lifespan that starts and stops the service's resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from bugtracker_shared.logs import configure_logging
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.web import RequestIdMiddleware, health_router

Wiring = Callable[[FastAPI], ServiceRuntime]
"""Builds the service's resources at start-up, puts its use cases on `app.state` and
registers its consumers; returns the runtime the lifespan starts and closes."""


def service_app(
    *,
    name: str,
    wire: Wiring,
    routers: Sequence[APIRouter],
    domain_errors: Mapping[type[Exception], int],
    log_level: str = "INFO",
) -> FastAPI:
    configure_logging(name, log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = wire(app)
        app.state.runtime = runtime
        app.state.token_verifier = runtime.verifier
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title=f"Bugtracker {name}", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app, domain_errors)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router(lambda request: request.app.state.runtime.health_checks()))
    return app
