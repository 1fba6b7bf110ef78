"""RFC 9457 problem details: the one error shape of every Bugtracker response.

Domain code raises plain exceptions; each app installs one handler table that maps
them to problems here, at the edge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from bugtracker_shared.db import DATABASE_ERRORS, database_unavailable, unstorable_text
from bugtracker_shared.request_context import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger("bugtracker.problems")


class ProblemError(Exception):
    """An error that already knows its HTTP answer (raised at the API edge only)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class UpstreamUnavailableError(Exception):
    """A service this one depends on did not answer; the caller may retry (503)."""

    code = "service_unavailable"


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://bugtracker.dev/problems/{code.replace('_', '-')}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": current_request_id(),
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, instance=instance, title=title, extra=extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


_STATUS_CODES = {
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.METHOD_NOT_ALLOWED: "method_not_allowed",
    HTTPStatus.UNAUTHORIZED: "unauthorized",
    HTTPStatus.FORBIDDEN: "forbidden",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "payload_too_large",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
}


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in errors]


# What an access log and the request metrics record for a request whose client left
# before the answer (nginx's "client closed request"): not a server error.
CLIENT_CLOSED_REQUEST = 499


def client_left(method: str, path: str) -> Response:
    """The answer to a request whose client went away mid-body (an abandoned upload): no
    one reads it; it is logged without a traceback and counted as 499, not as a 500."""
    logger.info("client left during %s %s", method, path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_problem_handlers(
    app: FastAPI,
    domain_errors: Mapping[type[Exception], int] | None = None,
    *,
    database: bool = False,
) -> None:
    """Map every error an app can raise to problem+json.

    `domain_errors` maps a domain exception class to its HTTP status; the exception's
    `code` attribute (or `conflict`/`not_found`-style default) becomes the problem code.
    With `database`, an app whose database cannot serve a request answers 503
    `database_unavailable` (with `Retry-After`) instead of 500.
    """
    table: dict[type[Exception], int] = {UpstreamUnavailableError: 503}
    table.update(domain_errors or {})

    async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.code,
            exc.detail,
            instance=request.url.path,
            title=exc.title,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return problem_response(
                400,
                "malformed_json",
                "The request body is not valid JSON.",
                instance=request.url.path,
                extra={"errors": _validation_errors(errors)},
            )
        return problem_response(
            422,
            "validation_error",
            "The request is not valid.",
            instance=request.url.path,
            extra={"errors": _validation_errors(errors)},
        )

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = HTTPStatus(exc.status_code)
        code = _STATUS_CODES.get(status, status.phrase.lower().replace(" ", "_"))
        detail = exc.detail if isinstance(exc.detail, str) else status.phrase
        return problem_response(
            exc.status_code, code, detail, instance=request.url.path, headers=exc.headers
        )

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        status = next(
            (code for cls, code in table.items() if isinstance(exc, cls)),
            HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        code = getattr(exc, "code", None) or _STATUS_CODES.get(HTTPStatus(status), "error")
        extra = getattr(exc, "extra", None)
        # A domain error may carry response headers, e.g. `Retry-After` on a 429.
        headers = getattr(exc, "headers", None)
        return problem_response(
            status,
            code,
            str(exc),
            instance=request.url.path,
            extra=extra or None,
            headers=headers if isinstance(headers, Mapping) else None,
        )

    async def on_client_left(request: Request, _: Exception) -> Response:
        return client_left(request.method, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            500,
            "internal_error",
            "An unexpected error occurred; it has been logged.",
            instance=request.url.path,
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        # The database restarting, away or overloaded is not a bug: a quick 503 the
        # client may retry, and a warning without a traceback. Anything else is a 500.
        if unstorable_text(exc):  # e.g. a NUL character in a text value
            return problem_response(
                422,
                "validation_error",
                "A text value contains a character that cannot be stored (such as NUL).",
                instance=request.url.path,
            )
        if not database_unavailable(exc):
            return await on_unexpected(request, exc)
        logger.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
        return problem_response(
            503,
            "database_unavailable",
            "The database cannot serve this request now; retry shortly.",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    handlers = app.exception_handlers
    handlers[ClientDisconnect] = on_client_left
    handlers[ProblemError] = on_problem
    handlers[RequestValidationError] = on_validation
    handlers[StarletteHTTPException] = on_http
    for cls in table:
        handlers[cls] = on_domain
    if database:
        for cls in DATABASE_ERRORS:
            handlers.setdefault(cls, on_database_error)
    handlers[Exception] = on_unexpected
