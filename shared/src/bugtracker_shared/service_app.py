"""The FastAPI app every Bugtracker service is: request ids, structured logs, metrics,
traces, problem+json, health endpoints and one lifespan that starts and stops the
service's resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request

from bugtracker_shared import tracing
from bugtracker_shared.etags import PreconditionFailedError
from bugtracker_shared.logs import configure_logging
from bugtracker_shared.metrics import ObservabilityMiddleware, metrics_router
from bugtracker_shared.openapi_answers import Answers, document_answers
from bugtracker_shared.pagination import InvalidCursorError
from bugtracker_shared.problems import install_problem_handlers
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.web import health_router

Wiring = Callable[[FastAPI], ServiceRuntime]
"""Builds the service's resources at start-up, puts its use cases on `app.state` and
registers its consumers; returns the runtime the lifespan starts and closes."""


# The errors of the shared contract modules, the same status in every service; a
# service's own `domain_errors` come on top.
SHARED_ERRORS: Mapping[type[Exception], int] = {
    InvalidCursorError: 422,
    PreconditionFailedError: 412,
}


def service_app(
    *,
    name: str,
    wire: Wiring,
    routers: Sequence[APIRouter],
    domain_errors: Mapping[type[Exception], int],
    log_level: str = "INFO",
    answers: Answers | None = None,
    versioned: Collection[str] = (),
) -> FastAPI:
    """`domain_errors` maps the service's domain errors to their status (`SHARED_ERRORS`
    need not be repeated there); `answers` and `versioned` complete the OpenAPI
    document's answers (`bugtracker_shared.openapi_answers.document_answers`)."""
    configure_logging(name, log_level)
    tracing.configure_tracing(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = wire(app)
        runtime.instrument()
        app.state.runtime = runtime
        app.state.token_verifier = runtime.verifier
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()
            tracing.flush()

    def runtime_of(request: Request) -> ServiceRuntime:
        runtime: ServiceRuntime = request.app.state.runtime
        return runtime

    app = FastAPI(
        title=f"Bugtracker {name}",
        version="0.1.0",
        lifespan=lifespan,
        # Traces come from our instrumentation when tracing is on (bugtracker_shared.tracing);
        # FastAPI's own would otherwise ask OTel's global providers on every request.
        telemetry=tracing.FASTAPI_TELEMETRY_OFF,
    )
    # One middleware: request id, log context (with the path's project and ticket ids),
    # metrics and the access line.
    app.add_middleware(ObservabilityMiddleware)
    if tracing.tracing_enabled():
        tracing.instrument_app(app)  # outermost: the server span covers everything
    install_problem_handlers(app, {**SHARED_ERRORS, **domain_errors}, database=True)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router(lambda request: runtime_of(request).health_checks()))
    app.include_router(metrics_router(lambda request: runtime_of(request).observe()))
    document_answers(app, routers, answers, versioned=versioned)
    return app
