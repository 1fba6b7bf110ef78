"""Schemathesis against the gateway's merged OpenAPI on the real system, authenticated as
the admin: EVERY operation and method, with a few generated examples each (bounded for
CI). Checks: no 5xx, a documented status, a documented content type (errors are
application/problem+json) and a body that conforms to the schema given for that status.

Driven through schemathesis' Python API with hypothesis rather than its pytest plugin
(whose lazy `from_fixture` schema does not work with this pytest version).

What is left out or held back, and why (the system is shared by the whole e2e session):
- `GET /api/v1/notifications/stream`: an event stream never ends; it has tests of its own.
- The operations that check a password (`login`, `token`, `users/me/password`) get
  `CREDENTIAL_EXAMPLES` only: every generated try is a failed login from this host, and
  auth throttles 10 of them a minute per address (docs/api.md, "Login throttling"), which
  would make the other e2e tests' logins answer 429.
- `POST /api/v1/auth/logout` runs last: it ends the admin's session, after which every
  request with its token is (correctly) a 401.
"""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 5
CREDENTIAL_EXAMPLES = 2
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SKIPPED = frozenset({("GET", "/api/v1/notifications/stream")})
CREDENTIAL_CHECKS = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/users/me/password"),
    }
)
LAST = frozenset({("POST", "/api/v1/auth/logout")})
# Defects of a service (not of the gateway), reported to its owners: still found and
# shown as warnings, but they do not fail this test. Remove an entry once fixed.
KNOWN_SERVICE_DEFECTS: dict[tuple[str, str], str] = {}


def _detail(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines()[1:] if line.strip()]
    return lines[0].strip() if lines else ""


@pytest.mark.timeout(600)
def test_every_operation_keeps_its_documented_answers_and_never_fails(system: Any) -> None:
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
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if (op.method.upper(), op.path) not in SKIPPED]
    # Stable order, the session-ending ones last.
    operations.sort(key=lambda op: ((op.method.upper(), op.path) in LAST, op.path, op.method))
    methods = {op.method.upper() for op in operations}

    for operation in operations:
        key = (operation.method.upper(), operation.path)
        examples = CREDENTIAL_EXAMPLES if key in CREDENTIAL_CHECKS else MAX_EXAMPLES

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=headers, timeout=10)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Failure, FailureGroup) as exc:  # one failure, or a group of them
                causes = getattr(exc, "exceptions", [exc])
                found = known if (case.method, case.path) in KNOWN_SERVICE_DEFECTS else failures
                found.append(
                    f"{case.method} {case.path} ({case.formatted_path} query={case.query}"
                    f" body={str(case.body)[:200]})"
                    f" -> {response.status_code} {response.text[:200]}: "
                    + "; ".join(str(c).splitlines()[0] + " / " + _detail(c) for c in causes)
                )

        run()

    assert len(operations) >= 45, len(operations)
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}, methods
    for defect in sorted(set(known)):
        warnings.warn(f"known service defect: {defect}", stacklevel=1)
    assert failures == [], "\n\n".join(failures)
