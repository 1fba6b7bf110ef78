"""docs/api.md against the code, with no database or broker: its table of every operation
is the gateway's merged OpenAPI document (built in process from the services' apps, as the
gateway builds it from their /openapi.json), its permission matrix and workflow are the
ones the services enforce, and its event table lists the events of the event models."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bugtracker_gateway.openapi import HTTP_METHODS, merge_documents
from bugtracker_gateway.routing import BACKENDS
from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.permissions import markdown_table
from bugtracker_tickets.domain.configuration import DEFAULT_WORKFLOW
from fastapi import FastAPI

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
Operations = list[Any]  # the root conftest's DocumentedOperation: method, path, who


# Building the apps and their documents takes seconds; the tests read the same merge, so
# it is built once and each test gets its own copy.
_MERGED: dict[str, Any] = {}


@pytest.fixture
def merged_openapi(app_factories: dict[str, Callable[[], FastAPI]]) -> dict[str, Any]:
    """What the gateway serves at /openapi.json: each service's document, as JSON, merged."""
    if not _MERGED:
        documents = {
            backend: json.loads(json.dumps(app_factories[backend]().openapi()))
            for backend in BACKENDS
        }
        _MERGED.update(merge_documents(documents, version="test"))
    return copy.deepcopy(_MERGED)


def served_operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_the_operations_table_lists_exactly_the_operations_of_the_merged_openapi(
    merged_openapi: dict[str, Any], documented_operations: Operations
) -> None:
    served = set(served_operations(merged_openapi))
    documented = {(o.method, o.path) for o in documented_operations}

    assert sorted(served - documented) == [], "in the OpenAPI, missing from docs/api.md"
    assert sorted(documented - served) == [], "in docs/api.md, not in the OpenAPI"


def test_the_operations_anyone_may_call_are_the_ones_without_a_token(
    merged_openapi: dict[str, Any], documented_operations: Operations
) -> None:
    public = {
        key for key, op in served_operations(merged_openapi).items() if op.get("security") == []
    }

    assert public == {(o.method, o.path) for o in documented_operations if o.who == "anyone"}


def test_the_permission_matrix_is_the_one_the_code_enforces() -> None:
    assert markdown_table() in API_DOC.read_text(encoding="utf-8")


def test_the_workflow_table_is_the_default_workflow() -> None:
    rows = [
        f"| `{source}` | "
        + ", ".join(f"`{t.to}`" for t in DEFAULT_WORKFLOW.from_status(source))
        + " |"
        for source in (s.key for s in DEFAULT_WORKFLOW.statuses)
    ]
    table = "\n".join(["| from | to |", "|---|---|", *rows])

    assert table in API_DOC.read_text(encoding="utf-8")


def test_the_event_table_lists_every_event_of_the_models_in_their_order() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    section = text[text.index("### Event types and their data") :]

    assert re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, re.MULTILINE) == list(EVENT_DATA)


GOOD = """text
<!-- operations table: begin -->
| operation | who | what |
|---|---|---|
| `GET /api/v1/tickets/{ticket_ref}` | member | one ticket |
| `POST /api/v1/auth/login` | anyone | log in |
<!-- operations table: end -->
more text
"""


def test_the_table_parser_reads_each_row(
    parse_operations_table: Callable[[str], Operations],
) -> None:
    assert [(o.method, o.path, o.who) for o in parse_operations_table(GOOD)] == [
        ("GET", "/api/v1/tickets/{ticket_ref}", "member"),
        ("POST", "/api/v1/auth/login", "anyone"),
    ]


ROW_1 = "| `GET /api/v1/tickets/{ticket_ref}` | member | one ticket |\n"
ROW_2 = "| `POST /api/v1/auth/login` | anyone | log in |\n"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(GOOD.replace("<!-- operations table: end -->\n", ""), id="no end marker"),
        pytest.param(GOOD + "<!-- operations table: begin -->\n", id="two begin markers"),
        pytest.param(GOOD.replace("| operation |", "| op |"), id="another header"),
        pytest.param(GOOD.replace(ROW_2, "\n" + ROW_2), id="a blank line"),
        pytest.param(GOOD.replace("`POST /", "`POST  /"), id="two spaces"),
        pytest.param(
            GOOD.replace("`POST /api/v1/auth/login`", "POST /api/v1/auth/login"), id="bare"
        ),
        pytest.param(GOOD.replace("`POST /", "`HEAD /"), id="a method the API does not use"),
        pytest.param(GOOD.replace("`GET /api/v1/tickets/", "`GET api/v1/tickets/"), id="relative"),
        pytest.param(GOOD.replace("| anyone | log in |", "| anyone |"), id="a missing column"),
        pytest.param(GOOD.replace("| log in |", "| log in | x |"), id="an extra column"),
        pytest.param(GOOD.replace("| anyone |", "|  |"), id="nobody in who"),
        pytest.param(
            GOOD.replace("POST /api/v1/auth/login", "GET /api/v1/tickets/{ticket_ref}"),
            id="a repeat",
        ),
        pytest.param(GOOD.replace(ROW_1, "").replace(ROW_2, ""), id="no rows"),
    ],
)
def test_the_table_parser_refuses_anything_else(
    parse_operations_table: Callable[[str], Operations], broken: str
) -> None:
    with pytest.raises(ValueError, match=r"operations table|line \d+|marker"):
        parse_operations_table(broken)
