"""Schemathesis against the gateway's merged OpenAPI on the real system, authenticated as
the admin: every GET operation with a few generated examples each (bounded for CI).
Checks: no 5xx, and every answer conforms to the schema the document gives for it.

Driven through schemathesis' Python API with hypothesis rather than its pytest plugin
(whose lazy `from_fixture` schema does not work with this pytest version)."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import Failure, FailureGroup

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 5
# An event stream never ends: it has tests of its own.
SKIPPED_PATHS = frozenset({"/api/v1/notifications/stream"})
# Defects of a service (not of the gateway), reported to its owners: still found and
# shown as warnings, but they do not fail this test. Remove an entry once fixed.
KNOWN_SERVICE_DEFECTS: dict[tuple[str, str], str] = {}


def _detail(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines()[1:] if line.strip()]
    return lines[0].strip() if lines else ""


@pytest.mark.timeout(600)
def test_every_get_operation_keeps_its_schema_and_never_fails(system: Any) -> None:
    login = httpx.post(
        f"{system.gateway_url}/api/v1/auth/login",
        json={"email": system.admin_email, "password": system.admin_password},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    schema = schemathesis.openapi.from_url(f"{system.gateway_url}/openapi.json")

    failures: list[str] = []
    known: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET" or operation.path in SKIPPED_PATHS:
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=headers, timeout=10)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except (Failure, FailureGroup) as exc:  # one failure, or a group of them
                causes = getattr(exc, "exceptions", [exc])
                found = known if (case.method, case.path) in KNOWN_SERVICE_DEFECTS else failures
                found.append(
                    f"{case.method} {case.path} ({case.formatted_path} query={case.query})"
                    f" -> {response.status_code} {response.text[:200]}: "
                    + "; ".join(str(c).splitlines()[0] + " / " + _detail(c) for c in causes)
                )

        run()

    assert operations >= 15, operations
    for defect in sorted(set(known)):
        warnings.warn(f"known service defect: {defect}", stacklevel=1)
    assert failures == [], "\n\n".join(failures)
