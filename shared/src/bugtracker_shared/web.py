"""FastAPI building blocks every Bugtracker app uses the same way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bugtracker_shared.logs import bind_log_context
from bugtracker_shared.pagination import next_link
from bugtracker_shared.problems import ProblemError
from bugtracker_shared.request_context import REQUEST_ID_HEADER, request_id_var, sane_request_id
from bugtracker_shared.tokens import InvalidTokenError, Principal, TokenVerifier, bearer_token

logger = logging.getLogger("bugtracker.web")

_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()


class StrictModel(BaseModel):
    """Request bodies: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class RequestIdMiddleware:
    """Accept a sane `X-Request-ID` or make one; expose it to logs and events; echo it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == _REQUEST_ID_HEADER_BYTES),
            None,
        )
        request_id = sane_request_id(incoming)
        token = request_id_var.set(request_id)
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", encoded))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


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

# Path parameters worth a field on every log line of the request, by their log key.
_LOGGED_PATH_PARAMS = {"project_ref": "project_id", "ticket_ref": "ticket_id"}


async def bind_path_ids(request: Request) -> None:
    """An app-wide dependency: the project and ticket a request is about go into its logs."""
    params = request.path_params
    if params:
        bind_log_context(
            **{key: params[name] for name, key in _LOGGED_PATH_PARAMS.items() if name in params}
        )


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
