"""FastAPI building blocks every Bugtracker app uses the same way (the request id and
the access line are `bugtracker_shared.metrics.ObservabilityMiddleware`'s)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from bugtracker_shared.logs import bind_log_context
from bugtracker_shared.pagination import next_link
from bugtracker_shared.problems import ProblemError
from bugtracker_shared.tokens import InvalidTokenError, Principal, TokenVerifier, bearer_token

logger = logging.getLogger("bugtracker.web")

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


def unauthorized(detail: str, code: str = "invalid_token") -> ProblemError:
    return ProblemError(
        401,
        code,
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def missing_token() -> ProblemError:
    """401 for a request that carries no credentials (RFC 6750: no error code then)."""
    return ProblemError(
        401, "unauthorized", "An access token is required.", headers={"WWW-Authenticate": "Bearer"}
    )


def link_next_page(request: Request, response: Response, next_cursor: str | None) -> None:
    """Sets `Link: <...>; rel="next"` when there is a page after this one."""
    link = next_link(request.url.path, request.query_params.multi_items(), next_cursor)
    if link:
        response.headers["Link"] = link


async def current_principal(request: Request) -> Principal:
    """The verified caller; 401 problem+json without a valid access token."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise missing_token()
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.verify(token)
    except InvalidTokenError as exc:
        raise unauthorized(str(exc), exc.code) from exc
    bind_log_context(user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def from_app_state(
    kind: type[T],  # noqa: ARG001 - only types the dependency
    name: str = "use_cases",
) -> Callable[[Request], Awaitable[T]]:
    """A dependency giving what `wire` put on `app.state.<name>` (the use-case object by
    default), typed as `kind`: `Annotated[X, Depends(from_app_state(X))]`."""

    async def dependency(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    return dependency


HealthCheck = Callable[[], Awaitable[None]]


def health_router(checks: Callable[[Request], Mapping[str, HealthCheck]]) -> APIRouter:
    """`/health/live` (process up) and `/health/ready` (every dependency answers)."""
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks(request).items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # a failed check is an answer, not an error
                logger.warning("readiness check %s failed: %s", name, exc)
                results[name] = "unavailable"
        healthy = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "checks": results},
            status_code=200 if healthy else 503,
        )

    return router
