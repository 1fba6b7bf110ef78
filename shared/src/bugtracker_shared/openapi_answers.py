"""Every answer of every operation in a service's OpenAPI document (docs/adr/0031).

FastAPI documents an operation's success and its own 422 as `application/json`; the real
errors are `application/problem+json` (`bugtracker_shared.problems`) and the headers
clients need (`Location`, `ETag`, `Link`, the gateway's rate limits) are not described.
`document_answers` post-processes the app's document once, from its routes: what can be
derived is derived (a token, a path parameter, a body or query, `If-Match`, `cursor`, a
201), and a small per-service table adds what only the use case knows (403, 409, ...).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from bugtracker_shared.problems import PROBLEM_CONTENT_TYPE
from bugtracker_shared.web import current_principal

Operation = tuple[str, str]
"""`("POST", "/api/v1/projects")`: an upper-case method and the path as routed."""
Answers = Mapping[Operation, Collection[int]]
"""The error statuses of an operation that its routes do not reveal (403, 409, ...)."""

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch"})

PROBLEM = "Problem"
VALIDATION_PROBLEM = "ValidationProblem"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM,
    "description": "An RFC 9457 problem: every error of the API. Switch on `code`.",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["https://bugtracker.dev/problems/not-found"]},
        "title": {"type": "string", "examples": ["Not Found"]},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "code": {"type": "string", "examples": ["not_found"]},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "invalid_transition: the statuses the workflow allows",
        },
    },
    "additionalProperties": True,
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": VALIDATION_PROBLEM,
    "description": "A problem about the request's content (validation_error, "
    "malformed_json, weak_password, ...); `errors` says where, when it is the schema.",
    "allOf": [
        {"$ref": f"#/components/schemas/{PROBLEM}"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg"],
                        "properties": {
                            "loc": {
                                "type": "array",
                                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                                "examples": [["body", "title"]],
                            },
                            "msg": {"type": "string"},
                        },
                        "additionalProperties": True,
                    },
                }
            },
        },
    ],
}

# Every error status the API answers with, and when (the codes are in docs/api.md).
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "malformed_json: the body is not valid JSON",
    401: "unauthorized, invalid_token, token_expired, token_revoked (no or a bad access "
    "token); invalid_credentials, invalid_refresh_token",
    403: "forbidden: the role does not allow this (also invalid_current_password, "
    "registration_closed)",
    404: "not_found: no such resource, or one the caller may not see",
    409: "a conflict with the current state: email_taken, project_key_taken, "
    "already_member, last_owner, project_archived, restore_expired, invalid_transition, "
    "status_in_use, type_in_use, option_in_use, field_exists",
    412: "precondition_failed: If-Match names a version that is no longer current",
    416: "range_not_satisfiable: the Range is outside the file (Content-Range: bytes */size)",
    428: "precondition_required: replacing the whole document needs If-Match",
    413: "payload_too_large: the body is larger than the gateway accepts (an attachment: "
    "BUGTRACKER_ATTACHMENTS_MAX_BYTES); quota_exceeded: the project's attachments quota",
    422: "validation_error (with errors), or a rule of the request: weak_password, "
    "invalid_cursor, unknown_user, assignee_not_member, resolution_required, "
    "idempotency_key_reused",
    429: "rate_limited: by the gateway, or failed logins (auth); see Retry-After",
    502: "bad_gateway: a backend gave no valid answer",
    503: "service_unavailable or database_unavailable; see Retry-After",
    504: "gateway_timeout: a backend did not answer in time; the request may have had its effect",
}
EVERYWHERE = frozenset({429, 502, 503, 504})  # the gateway's, and the database's 503

_TEXT = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The request's id, also the problem's request_id"},
    "RateLimit-Policy": {"description": 'The gateway\'s quota, e.g. "default";q=1200;w=60'},
    "RateLimit": {"description": 'What remains of it, e.g. "default";r=1187;t=42'},
    "Location": {"description": "The URL of the created resource", "required": True},
    "ETag": {"description": 'The resource\'s version, e.g. "7", for If-Match/If-None-Match'},
    "Link": {"description": 'RFC 8288 <...>; rel="next" when there is a next page'},
    "Retry-After": {"description": "Seconds after which to try again"},
    "WWW-Authenticate": {"description": "Bearer, with error=invalid_token for a bad token"},
    "Idempotent-Replayed": {"description": "true when an Idempotency-Key replayed a create"},
}


def _headers(*names: str) -> dict[str, Any]:
    return {name: {**HEADERS[name], "schema": _TEXT} for name in names}


def _ref(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else None


def _needs(dependant: Dependant, dependency: object) -> bool:
    return any(d.call is dependency or _needs(d, dependency) for d in dependant.dependencies)


def token_operations(routers: Sequence[APIRouter]) -> set[Operation]:
    """The operations whose routes depend (maybe indirectly) on the verified caller.
    (The routers' own routes: an app's are nested per included router.)"""
    return {
        (method, route.path)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and _needs(route.dependant, current_principal)
        for method in route.methods or ()
    }


def _error(status: int) -> dict[str, Any]:
    schema = VALIDATION_PROBLEM if status in {400, 422} else PROBLEM
    headers = ["X-Request-ID", "RateLimit-Policy", "RateLimit"]
    if status in {429, 503}:
        headers.append("Retry-After")
    if status == 401:  # noqa: PLR2004
        headers.append("WWW-Authenticate")
    return {
        "description": ERROR_DESCRIPTIONS[status],
        "headers": _headers(*headers),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error_statuses(
    key: Operation, operation: dict[str, Any], secured: set[Operation], answers: Answers
) -> set[int]:
    params: list[dict[str, Any]] = operation.get("parameters", [])
    statuses = set(EVERYWHERE) | set(answers.get(key, ()))
    if key in secured:
        statuses.add(401)
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    body = operation.get("requestBody")
    if body:
        statuses |= {413, 422}
        if "application/json" in body.get("content", {}):
            statuses.add(400)
    if any(p["in"] != "path" or "format" in p.get("schema", {}) for p in params):
        statuses.add(422)  # a query or header parameter, or a typed path parameter
    if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in params):
        statuses.add(412)
    return statuses


def _successes(
    operation: dict[str, Any], responses: dict[str, Any], versioned: Collection[str]
) -> None:
    params: list[dict[str, Any]] = operation.get("parameters", [])
    query = {p["name"] for p in params if p["in"] == "query"}
    headers = {p["name"].lower() for p in params if p["in"] == "header"}
    for status, response in responses.items():
        if not status.startswith("2"):
            continue
        names = ["X-Request-ID", "RateLimit-Policy", "RateLimit"]
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if status == "201":
            names.append("Location")
        if _ref(schema) in versioned:
            names.append("ETag")
        if "cursor" in query:
            names.append("Link")
        if "idempotency-key" in headers:
            names.append("Idempotent-Replayed")
        response["headers"] = {**response.get("headers", {}), **_headers(*names)}
    if "if-none-match" in headers:
        responses["304"] = {
            "description": "If-None-Match matched: the cached copy is current (no body)",
            "headers": _headers("X-Request-ID", "ETag"),
        }


def describe_answers(
    document: dict[str, Any],
    *,
    secured: set[Operation],
    answers: Answers,
    versioned: Collection[str] = (),
) -> dict[str, Any]:
    """Adds every answer to `document` (in place, and returns it)."""
    unknown = set(answers)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or path.startswith("/health"):
                continue  # the health endpoints answer for operators, not through the gateway
            key = (method.upper(), path)
            unknown.discard(key)
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's HTTPValidationError, application/json
            _successes(operation, responses, versioned)
            for status in sorted(_error_statuses(key, operation, secured, answers)):
                responses[str(status)] = _error(status)
    if unknown:
        raise ValueError(f"answers for operations the app does not have: {sorted(unknown)}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM] = PROBLEM_SCHEMA
    schemas[VALIDATION_PROBLEM] = VALIDATION_PROBLEM_SCHEMA
    if "#/components/schemas/HTTPValidationError" not in json.dumps(document["paths"]):
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unused
            schemas.pop(name, None)
    return document


def document_answers(
    app: FastAPI,
    routers: Sequence[APIRouter],
    answers: Answers | None = None,
    *,
    versioned: Collection[str] = (),
) -> None:
    """Makes `app.openapi()` describe every answer (see `describe_answers`).

    `answers` adds, per operation, the error statuses only its use case knows;
    `versioned` names the response schemas served with an `ETag`."""
    generate = app.openapi
    described: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not described:
            described.append(
                describe_answers(
                    generate(),
                    secured=token_operations(routers),
                    answers=answers or {},
                    versioned=versioned,
                )
            )
        return described[0]

    app.openapi = openapi  # type: ignore[method-assign]
