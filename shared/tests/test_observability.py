"""Structured logs, the access log and the HTTP metrics of the shared middleware."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid

import httpx
import pytest
from bugtracker_shared import tracing
from bugtracker_shared.logs import (
    _BackgroundWriter,
    bind_log_context,
    configure_logging,
    get_logger,
    log_context,
)
from bugtracker_shared.metrics import ObservabilityMiddleware, metrics_router
from bugtracker_shared.request_context import current_request_id, new_request_id
from bugtracker_shared.runtime import ServiceRuntime
from bugtracker_shared.service_app import service_app
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from starlette.background import BackgroundTask


def _app() -> FastAPI:
    app = FastAPI()

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


async def test_the_request_id_is_kept_when_sane_made_otherwise_and_sent_back_once() -> None:
    configure_logging("tickets", "WARNING", "json", background=False)
    app = _app()

    @app.get("/api/v1/echo")
    async def echo() -> JSONResponse:
        # An app that sets the header itself still answers with one, the request's.
        return JSONResponse({"seen": current_request_id()}, headers={"X-Request-ID": "app-made-1"})

    async with _client(app) as client:
        kept = await client.get("/api/v1/echo", headers={"X-Request-ID": "client-id-0001"})
        insane = await client.get("/api/v1/echo", headers={"X-Request-ID": "<script>"})
        missing = await client.get("/api/v1/echo")

    assert kept.headers.get_list("x-request-id") == ["client-id-0001"]
    assert kept.json()["seen"] == "client-id-0001"
    for made in (insane, missing):
        [request_id] = made.headers.get_list("x-request-id")
        assert made.json()["seen"] == request_id
        assert uuid.UUID(request_id).version == 4
    assert insane.headers["x-request-id"] != missing.headers["x-request-id"]
    assert current_request_id() is None  # nothing stays behind in the caller's context


def test_new_request_ids_are_random_uuid4s() -> None:
    made = {new_request_id() for _ in range(1000)}
    assert len(made) == 1000
    for request_id in made:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)


async def test_an_id_bound_by_the_app_wins_over_the_path_parameter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("projects", "INFO", "json", background=False)
    app = _app()

    @app.get("/api/v1/projects/{project_ref}/members")
    async def members(project_ref: str) -> dict[str, str]:
        get_logger("bugtracker.test").info("before")
        bind_log_context(project_id="0b9c4a52-project-uuid")
        get_logger("bugtracker.test").info("after")
        return {}

    async with _client(app) as client:
        await client.get("/api/v1/projects/DEMO/members")

    lines = {line["event"]: line for line in _json_lines(capsys.readouterr().err)}
    assert lines["before"]["project_id"] == "DEMO"  # from the path
    assert lines["after"]["project_id"] == "0b9c4a52-project-uuid"
    assert lines["request"]["project_id"] == "0b9c4a52-project-uuid"


def test_json_lines_carry_the_traceback_of_an_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "json", background=False)
    try:
        raise ValueError("broken")
    except ValueError:
        get_logger("bugtracker.test").exception("it failed", ticket_id="DEMO-9")
        logging.getLogger("bugtracker.stdlib").exception("stdlib too")
    structlog_line, stdlib_line = _json_lines(capsys.readouterr().err)
    assert structlog_line["level"] == "error"
    assert structlog_line["ticket_id"] == "DEMO-9"
    assert "ValueError: broken" in structlog_line["exception"]
    assert stdlib_line["logger"] == "bugtracker.stdlib"
    assert "ValueError: broken" in stdlib_line["exception"]


def test_console_lines_are_sorted_key_values_with_the_traceback_below(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "console", background=False)
    get_logger("bugtracker.access").info("request", status=201, path="/api/v1/tickets")
    try:
        raise ValueError("broken")
    except ValueError:
        get_logger("bugtracker.test").exception("it failed")
    first, *rest = capsys.readouterr().err.splitlines()
    assert "level=" not in first
    assert "timestamp=" not in first
    assert " [info     ] request [bugtracker.access] path=/api/v1/tickets " in first
    assert first.endswith("service=tickets status=201")
    assert "[error    ] it failed [bugtracker.test]" in rest[0]
    assert rest[1] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: broken"


def test_a_logger_follows_later_configurations(capsys: pytest.CaptureFixture[str]) -> None:
    logger = get_logger("bugtracker.test")  # made before the process configures logging
    configure_logging("auth", "INFO", "json", background=False)
    logger.info("as json")
    configure_logging("auth", "INFO", "console", background=False)
    logger.info("as text")
    configure_logging("auth", "WARNING", "console", background=False)
    logger.info("filtered out")
    logger.warning("kept")
    json_line, text_line, warning_line = capsys.readouterr().err.splitlines()
    assert json.loads(json_line)["event"] == "as json"
    assert " as text [bugtracker.test]" in text_line
    assert " kept [bugtracker.test]" in warning_line


def test_the_background_writer_writes_every_line_in_order() -> None:
    stream = io.StringIO()
    writer = _BackgroundWriter(stream)
    lines = [f"line {number}\n" for number in range(2 * _BackgroundWriter.WAKE_AT_LINES + 7)]
    for line in lines:
        writer.write(line)
    writer.close()
    assert stream.getvalue() == "".join(lines)


def test_a_service_app_has_one_middleware_and_no_app_wide_dependency() -> None:
    def wire(_app: FastAPI) -> ServiceRuntime:
        raise NotImplementedError

    app = service_app(name="tickets", wire=wire, routers=[], domain_errors={})
    assert [middleware.cls for middleware in app.user_middleware] == [ObservabilityMiddleware]
    assert app.router.dependencies == []


@pytest.mark.parametrize(
    ("environ", "description"),
    [
        ({}, "ParentBased{root:TraceIdRatioBased{0.05}"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.0"}, "ParentBased{root:TraceIdRatioBased{1.0}"),
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "ParentBased{root:TraceIdRatioBased{0.05}"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "ParentBased{root:TraceIdRatioBased{0.05}"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
            "TraceIdRatioBased{0.5}",
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, "AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "ParentBased{root:AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "nonsense"}, "ParentBased{root:TraceIdRatioBased{0.05}"),
    ],
)
def test_traces_are_sampled_at_5_percent_unless_the_standard_variables_say_otherwise(
    environ: dict[str, str], description: str
) -> None:
    assert tracing.traces_sampler(environ).get_description().startswith(description)


async def test_the_duration_ends_with_the_answer_not_with_the_work_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tickets", "INFO", "json", background=False)
    app = _app()

    @app.get("/api/v1/answered")
    async def answered() -> JSONResponse:
        return JSONResponse({}, background=BackgroundTask(asyncio.sleep, 0.3))

    async with _client(app) as client:
        await client.get("/api/v1/answered")

    access = next(
        line for line in _json_lines(capsys.readouterr().err) if line["event"] == "request"
    )
    assert access["path"] == "/api/v1/answered"
    assert isinstance(access["duration_ms"], float)
    assert access["duration_ms"] < 250
