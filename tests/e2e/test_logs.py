"""What the six processes log, as an operator reads it: JSON lines that follow one request
across processes, and never a password or a token."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from bugtracker_devstack.stack import Stack
from bugtracker_testkit import JWT_PATTERN, register, wait_until

pytestmark = pytest.mark.e2e

FIRST_PASSWORD = "violet harbour 19 lanterns drift"
SECOND_PASSWORD = "copper meadow 64 kites ascend"
WRONG_PASSWORD = "this is not the password 1234"


def _log_text(logs: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(logs.glob("*.log")))


def _records(logs: Path, process: str) -> list[dict[str, Any]]:
    # Every replica's log: "tickets.log", "tickets#1.log", ...
    lines = [
        line
        for path in sorted(logs.glob(f"{process}*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_no_password_or_token_reaches_the_logs(system: Any, infra: Stack) -> None:
    secrets: list[str] = [FIRST_PASSWORD, SECOND_PASSWORD, WRONG_PASSWORD]
    with httpx.Client(base_url=system.gateway_url, timeout=10) as api:
        _, email = register(api, "logs", password=FIRST_PASSWORD)
        refused = api.post("/api/v1/auth/login", json={"email": email, "password": WRONG_PASSWORD})
        assert refused.status_code == 401
        login = api.post("/api/v1/auth/login", json={"email": email, "password": FIRST_PASSWORD})
        assert login.status_code == 200, login.text
        tokens = login.json()
        spent = {"refresh_token": tokens["refresh_token"]}
        refreshed = api.post("/api/v1/auth/refresh", json=spent)
        assert refreshed.status_code == 200, refreshed.text
        fresh = refreshed.json()
        # The spent refresh token again: reuse detection, and a 401 with a logged warning.
        reused = api.post("/api/v1/auth/refresh", json=spent)
        assert reused.status_code == 401
        relogin = api.post("/api/v1/auth/login", json={"email": email, "password": FIRST_PASSWORD})
        assert relogin.status_code == 200, relogin.text
        current = relogin.json()
        changed = api.post(
            "/api/v1/users/me/password",
            json={"current_password": FIRST_PASSWORD, "new_password": SECOND_PASSWORD},
            headers={"Authorization": f"Bearer {current['access_token']}"},
        )
        assert changed.status_code == 204, changed.text
        forged = api.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {current['access_token']}x"}
        )
        assert forged.status_code == 401
        marker = f"logs-probe-{uuid.uuid4().hex}"
        api.get("/api/v1/users/me", headers={"X-Request-ID": marker})
    for pair in (tokens, fresh, current):
        secrets += [pair["access_token"], pair["refresh_token"]]
    secrets += [
        system.admin_password,
        infra.internal_token,
        *infra.role_passwords.values(),
        *infra.amqp_passwords.values(),
    ]

    # The last request's access line is written after its answer: wait for it.
    wait_until(lambda: _log_text(system.logs), lambda text: marker in text)
    text = _log_text(system.logs)
    leaked = [secret[:12] + "…" for secret in secrets if secret in text]
    assert not leaked, f"secrets in the logs: {leaked}"
    assert not JWT_PATTERN.search(text), "a JSON Web Token is in the logs"


def test_one_request_can_be_followed_across_processes_by_its_id(system: Any) -> None:
    request_id = f"follow-{uuid.uuid4().hex}"
    with httpx.Client(base_url=system.gateway_url, timeout=10) as api:
        answered = api.post(
            "/api/v1/auth/login",
            json={"email": system.admin_email, "password": system.admin_password},
            headers={"X-Request-ID": request_id},
        )
    assert answered.status_code == 200
    assert answered.headers["x-request-id"] == request_id

    def access_lines() -> list[dict[str, Any]]:
        return [
            record
            for process in ("gateway", "auth")
            for record in _records(system.logs, process)
            if record.get("request_id") == request_id
            and record.get("logger") == "bugtracker.access"
        ]

    lines = wait_until(access_lines, lambda found: len(found) == 2)
    by_service = {line["service"]: line for line in lines}
    assert set(by_service) == {"gateway", "auth"}
    for line in lines:
        assert line["method"] == "POST"
        assert line["path"] == "/api/v1/auth/login"
        assert line["status"] == 200
        assert line["level"] == "info"
        assert line["duration_ms"] > 0
    # The gateway's time includes auth's.
    assert by_service["gateway"]["duration_ms"] >= by_service["auth"]["duration_ms"]


def test_access_lines_carry_route_templates_and_the_caller(system: Any) -> None:
    with httpx.Client(base_url=system.gateway_url, timeout=10) as api:
        login = api.post(
            "/api/v1/auth/login",
            json={"email": system.admin_email, "password": system.admin_password},
        )
        token = login.json()["access_token"]
        me = api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        user_id = me.json()["id"]
        request_id = f"template-{uuid.uuid4().hex}"
        api.get(
            f"/api/v1/users/{user_id}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        )

    def access_lines(process: str) -> list[dict[str, Any]]:
        return [
            r
            for r in _records(system.logs, process)
            if r.get("request_id") == request_id and r.get("logger") == "bugtracker.access"
        ]

    auth_line = wait_until(lambda: access_lines("auth"), bool)[0]
    gateway_line = wait_until(lambda: access_lines("gateway"), bool)[0]
    assert auth_line["path"] == "/api/v1/users/{user_id}"
    assert gateway_line["path"] == "/api/v1/users/{id}"
    assert auth_line["user_id"] == gateway_line["user_id"] == user_id
    assert user_id not in auth_line["path"]
