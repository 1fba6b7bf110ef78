"""Structured logs, the access log and the HTTP metrics of the shared middleware."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from bugtracker_shared import tracing
from bugtracker_shared.logs import bind_log_context, configure_logging, get_logger, log_context
from bugtracker_shared.metrics import ObservabilityMiddleware, metrics_router
from bugtracker_shared.web import RequestIdMiddleware, bind_path_ids
from fastapi import Depends, FastAPI, Request
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY


def _app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(bind_path_ids)])

    @app.get("/api/v1/tickets/{ticket_ref}")
    async def get_ticket(ticket_ref: str) -> dict[str, str]:
        bind_log_context(user_id="u-7")
        get_logger("bugtracker.test").info("looked up", ref=ticket_ref)
        return {"key": ticket_ref}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    async def nothing_to_refresh(_request: Request) -> None:
        return None

    app.include_router(metrics_router(nothing_to_refresh))
    app.add_middleware(ObservabilityMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "bugtracker_http_request_duration_seconds_count",
        {"method": "GET", "route": route, "status": status},
    )
    return value or 0.0


async def test_every_line_is_json_with_service_request_and_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "json", background=False)
    request_id = f"req-{uuid.uuid4().hex}"
    async with _client(_app()) as client:
        response = await client.get("/api/v1/tickets/DEMO-42", headers={"X-Request-ID": request_id})
    assert response.status_code == 200

    lines = _json_lines(capsys.readouterr().err)
    app_line = next(line for line in lines if line["event"] == "looked up")
    assert app_line["service"] == "tickets"
    assert app_line["level"] == "info"
    assert app_line["request_id"] == request_id
    assert app_line["ticket_id"] == "DEMO-42"
    assert app_line["user_id"] == "u-7"
    access = next(line for line in lines if line["logger"] == "bugtracker.access")
    assert access["method"] == "GET"
    assert access["path"] == "/api/v1/tickets/{ticket_ref}"  # the template, not the id
    assert access["status"] == 200
    assert isinstance(access["duration_ms"], float)
    assert access["request_id"] == request_id
    assert access["user_id"] == "u-7"
    assert access["ticket_id"] == "DEMO-42"  # the id is a field of its own


async def test_ids_of_one_request_do_not_leak_into_the_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "json", background=False)
    app = _app()

    @app.get("/api/v1/plain")
    async def plain() -> dict[str, str]:
        get_logger("bugtracker.test").info("plain")
        return {}

    async with _client(app) as client:
        await client.get("/api/v1/tickets/DEMO-1")
        await client.get("/api/v1/plain")
    plain_line = next(
        line for line in _json_lines(capsys.readouterr().err) if line["event"] == "plain"
    )
    assert "user_id" not in plain_line
    assert "ticket_id" not in plain_line


def test_console_format_is_readable_key_value(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("projects", "INFO", "console", background=False)
    with log_context(project_id="p-1"):
        logging.getLogger("bugtracker.test").warning("members changed: %d", 3)
    out = capsys.readouterr().err
    assert "members changed: 3" in out
    assert "service=projects" in out
    assert "project_id=p-1" in out
    assert not out.lstrip().startswith("{")


def test_lines_carry_the_trace_and_span_of_a_traced_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "json", background=False)
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("work") as span:
        logging.getLogger("bugtracker.test").info("inside")
    line = _json_lines(capsys.readouterr().err)[-1]
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert not tracing.tracing_enabled()  # a span alone does not switch tracing on


async def test_requests_are_counted_by_route_template_and_status() -> None:
    configure_logging("tickets", "WARNING", "json", background=False)
    before_ok = _count("/api/v1/tickets/{ticket_ref}", "200")
    before_boom = _count("/boom", "500")
    before_unmatched = _count("<unmatched>", "404")
    async with _client(_app()) as client:
        await client.get("/api/v1/tickets/A-1")
        await client.get("/api/v1/tickets/B-2")
        failed = await client.get("/boom")
        missing = await client.get("/no/such/path")
        metrics = await client.get("/metrics")

    assert failed.status_code == 500
    assert missing.status_code == 404
    assert _count("/api/v1/tickets/{ticket_ref}", "200") == before_ok + 2
    assert _count("/boom", "500") == before_boom + 1
    assert _count("<unmatched>", "404") == before_unmatched + 1
    assert REGISTRY.get_sample_value("bugtracker_http_requests_in_flight") == 0
    assert metrics.headers["content-type"].startswith("text/plain")
    body = metrics.text
    assert 'route="/api/v1/tickets/{ticket_ref}"' in body
    assert "A-1" not in body
    assert 'route="/metrics"' not in body  # scrapes are not counted
