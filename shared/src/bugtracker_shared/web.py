"""FastAPI building blocks every Bugtracker app uses the same way (the request id and
the access line are `bugtracker_shared.metrics.ObservabilityMiddleware`'s)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, Self, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from bugtracker_shared.etags import etag, expected_version, not_modified
from bugtracker_shared.internal import internal_caller
from bugtracker_shared.logs import bind_log_context
from bugtracker_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, next_link
from bugtracker_shared.problems import ProblemError
from bugtracker_shared.tokens import InvalidTokenError, Principal, TokenVerifier, bearer_token

logger = logging.getLogger("bugtracker.web")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# The query parameters of every list endpoint (ADR 0016) and the conditional headers.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]
IfMatch = Annotated[str | None, Header(description="ETag of the version you changed")]
IfNoneMatch = Annotated[str | None, Header()]


class StrictModel(BaseModel):
    """Request bodies: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


def example(**fields: Any) -> ConfigDict:
    """The `model_config` of a request body with one example for the OpenAPI document:
    `model_config = example(key="BUG", name="Bugtracker")`."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


class ResponseModel(BaseModel):
    """Response bodies that show a domain object: each field not given is the object's
    attribute of the same name."""

    @classmethod
    def from_attributes(cls, source: object, **values: Any) -> Self:
        for name in cls.model_fields:
            if name not in values:
                values[name] = getattr(source, name)
        return cls(**values)


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=_Versioned)


def versioned(response: Response, body: V) -> V:
    """`body` (a versioned resource) with its `ETag` set on the response."""
    response.headers["ETag"] = etag(body.version)
    return body


@dataclass(frozen=True)
class ConditionalWrite:
    """A write under `If-Match`: the version it insists on (None: no condition) and the
    response the changed resource answers with, its `ETag` set."""

    expected_version: int | None
    response: Response

    def answer(self, body: V) -> V:
        return versioned(self.response, body)


async def conditional_write(response: Response, if_match: IfMatch = None) -> ConditionalWrite:
    return ConditionalWrite(expected_version=expected_version(if_match), response=response)


Conditional = Annotated[ConditionalWrite, Depends(conditional_write)]


def unless_not_modified(response: Response, if_none_match: str | None, body: V) -> V | Response:
    """304 (with the `ETag`) when the client's copy is current, else `body` as `versioned`."""
    if not_modified(if_none_match, body.version):
        return Response(status_code=304, headers={"ETag": etag(body.version)})
    return versioned(response, body)


class _Listing(Protocol[T_co]):
    @property
    def items(self) -> Sequence[T_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Page[Any])


def page_of(
    request: Request,
    response: Response,
    page: type[P],
    listing: _Listing[T],
    show: Callable[[T], Any],
    **extra: Any,
) -> P:
    """One page of a list endpoint: its items shown with `show`, the `Link` header set."""
    link_next_page(request, response, listing.next_cursor)
    return page(
        items=[show(item) for item in listing.items], next_cursor=listing.next_cursor, **extra
    )


@dataclass(frozen=True)
class PageRequest:
    """A list endpoint's `limit` and `cursor`, and the request and response its page
    answers (for the `Link` header)."""

    limit: int
    cursor: str | None
    request: Request
    response: Response

    def answer(
        self, page: type[P], listing: _Listing[T], show: Callable[[T], Any], **extra: Any
    ) -> P:
        return page_of(self.request, self.response, page, listing, show, **extra)


async def page_request(
    request: Request, response: Response, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor, request=request, response=response)


# A dependency, not the class itself: FastAPI would call a class in its thread pool.
Paging = Annotated[PageRequest, Depends(page_request)]


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
    if not principal.may(request.method):
        # The gateway refuses these already; a service reached another way does too.
        raise insufficient_scope()
    return principal


def insufficient_scope(
    detail: str = "The token's scopes do not allow this request (it needs `write`).",
) -> ProblemError:
    """403 for a token whose scopes do not cover the request (RFC 6750 section 3.1)."""
    return ProblemError(
        403,
        "insufficient_scope",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def no_store(response: Response) -> None:
    """A route dependency: the answer must not be cached."""
    response.headers["Cache-Control"] = "no-store"


def internal_router() -> APIRouter:
    """The `/internal` routes of a service: only for callers with the internal token
    (`bugtracker_shared.internal`), answers never cached, left out of the OpenAPI document."""
    return APIRouter(
        prefix="/internal",
        include_in_schema=False,
        dependencies=[Depends(internal_caller), Depends(no_store)],
    )


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
