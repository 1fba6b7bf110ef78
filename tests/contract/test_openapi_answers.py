"""The OpenAPI documents describe every answer (docs/adr/0031): each service's, built in
process, and the gateway's merge of them. Errors are application/problem+json with the
one `Problem` schema (or its `ValidationProblem` variant), 401 wherever a token is
needed, 404 wherever there is a path parameter, 422 wherever there is a body or query,
and the headers a client needs on success."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bugtracker_gateway.openapi import HTTP_METHODS, merge_documents
from bugtracker_gateway.routing import BACKENDS
from bugtracker_shared.openapi_answers import describe_answers
from fastapi import FastAPI

Operations = list[tuple[str, str, str, dict[str, Any]]]  # (document, METHOD, path, operation)
PROBLEMS = {"#/components/schemas/Problem", "#/components/schemas/ValidationProblem"}
# Public operations (docs/api.md: `anyone`); every other one needs an access token.
PUBLIC = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/auth/jwks.json"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/api/v1/notifications/unsubscribe"),  # RFC 8058 one-click, from an e-mail
}


# Building the apps and their documents takes seconds; every test here reads the same
# ones, so they are built once and each test gets its own copy.
_BUILT: dict[str, dict[str, Any]] = {}


@pytest.fixture
def documents(app_factories: dict[str, Callable[[], FastAPI]]) -> dict[str, dict[str, Any]]:
    """Each service's document as it serves it, and the gateway's merge of them."""
    if not _BUILT:
        services = {b: json.loads(json.dumps(app_factories[b]().openapi())) for b in BACKENDS}
        _BUILT.update({**services, "gateway": merge_documents(services, version="test")})
    return copy.deepcopy(_BUILT)


def _operations(documents: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str, Any]]:
    for name, document in documents.items():
        for path, item in document["paths"].items():
            if path.startswith("/health"):
                continue
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    yield name, method.upper(), path, operation


@pytest.fixture
def operations(documents: dict[str, dict[str, Any]]) -> Operations:
    found = list(_operations(documents))
    assert len([o for o in found if o[0] == "gateway"]) >= 45
    return found


def _params(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


def test_every_operation_that_needs_a_token_documents_401(operations: Operations) -> None:
    missing = [
        (doc, m, p)
        for doc, m, p, op in operations
        if (m, p) not in PUBLIC and "401" not in op["responses"]
    ]
    assert missing == []


def test_every_operation_with_a_path_parameter_documents_404(operations: Operations) -> None:
    missing = [
        (doc, m, p)
        for doc, m, p, op in operations
        if _params(op, "path") and "404" not in op["responses"]
    ]
    assert missing == []


def test_every_operation_with_a_body_or_query_documents_a_422_problem(
    operations: Operations,
) -> None:
    missing = [
        (doc, m, p)
        for doc, m, p, op in operations
        if (op.get("requestBody") or _params(op, "query"))
        and op["responses"]
        .get("422", {})
        .get("content", {})
        .get("application/problem+json", {})
        .get("schema")
        != {"$ref": "#/components/schemas/ValidationProblem"}
    ]
    assert missing == []


def test_every_error_is_problem_json_with_the_problem_schema(
    documents: dict[str, dict[str, Any]], operations: Operations
) -> None:
    wrong = [
        (doc, m, p, status)
        for doc, m, p, op in operations
        for status, response in op["responses"].items()
        if int(status) >= 400
        and (
            set(response.get("content", {})) != {"application/problem+json"}
            or response["content"]["application/problem+json"]["schema"].get("$ref") not in PROBLEMS
        )
    ]
    assert wrong == []
    for name, document in documents.items():  # the merge keeps both, under their names
        schemas = document["components"]["schemas"]
        assert {"code", "request_id", "status"} <= set(schemas["Problem"]["properties"]), name
        assert "HTTPValidationError" not in schemas, name  # FastAPI's default 422 is gone


def test_the_gateways_answers_are_on_every_operation(operations: Operations) -> None:
    missing = [
        (doc, m, p)
        for doc, m, p, op in operations
        if not {"429", "502", "503", "504"} <= set(op["responses"])
        or "Retry-After" not in op["responses"]["429"].get("headers", {})
        or (op.get("requestBody") and "413" not in op["responses"])
    ]
    assert missing == []


def test_creates_document_location_and_successes_the_rate_limit_headers(
    operations: Operations,
) -> None:
    creates = [
        (m, p, op["responses"]["201"]) for _, m, p, op in operations if "201" in op["responses"]
    ]
    assert len(creates) >= 5 * 2  # register, project, member, ticket, comment; twice
    assert all(r["headers"]["Location"]["required"] for _, _, r in creates)
    successes = [
        r for _, _, _, op in operations for s, r in op["responses"].items() if s.startswith("2")
    ]
    assert all({"RateLimit", "RateLimit-Policy"} <= set(r["headers"]) for r in successes)


def test_conditions_pages_and_versions_are_documented(
    documents: dict[str, dict[str, Any]],
) -> None:
    paths = documents["gateway"]["paths"]
    ticket = paths["/api/v1/tickets/{ticket_ref}"]
    assert "ETag" in ticket["get"]["responses"]["200"]["headers"]
    assert "304" in ticket["get"]["responses"]
    assert "412" in ticket["patch"]["responses"]
    assert "ETag" in ticket["patch"]["responses"]["200"]["headers"]
    assert (
        "Link"
        in paths["/api/v1/projects/{project_ref}/tickets"]["get"]["responses"]["200"]["headers"]
    )
    assert "409" in paths["/api/v1/projects"]["post"]["responses"]
    assert "401" in paths["/api/v1/auth/login"]["post"]["responses"]
    register = paths["/api/v1/auth/register"]["post"]
    assert "409" in register["responses"]
    assert "401" not in register["responses"]


def test_a_table_entry_for_an_operation_the_app_lacks_is_refused() -> None:
    document: dict[str, Any] = {"paths": {"/api/v1/x": {"get": {"responses": {}}}}}
    with pytest.raises(ValueError, match="/api/v1/y"):
        describe_answers(document, secured=set(), answers={("GET", "/api/v1/y"): {409}})
