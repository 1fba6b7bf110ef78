"""Process-wide structured logging with structlog.

Every line carries the service, the level, the logger, the request id and, where they are
known, the user, project, ticket and event ids (bound with `bind_log_context` or
`structlog.contextvars`), plus the trace and span ids when tracing is on. Records from
the standard library's `logging` (uvicorn, aio-pika, SQLAlchemy, our modules) go through
the same processors, so one format covers the whole process.

`BUGTRACKER_LOG_FORMAT=json` (the default: containers and CI) writes one JSON object per
line; `console` (what `make up` sets) writes readable `key=value` lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from opentelemetry import trace
from pydantic_settings import BaseSettings, SettingsConfigDict

from bugtracker_shared.request_context import current_request_id

LogFormat = Literal["json", "console"]

# Context keys a log line may carry besides the request id; bound per request or event.
CONTEXT_KEYS = ("user_id", "project_id", "ticket_id", "event_id", "event_type")


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_LOG_", extra="ignore")

    format: LogFormat = "json"


EventDict = MutableMapping[str, Any]


def _add_request_id(_logger: Any, _method: str, event: EventDict) -> EventDict:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _add_trace_ids(_logger: Any, _method: str, event: EventDict) -> EventDict:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def _service_adder(service: str) -> structlog.types.Processor:
    def add_service(_logger: Any, _method: str, event: EventDict) -> EventDict:
        event["service"] = service
        return event

    return add_service


def configure_logging(
    service: str, level: str = "INFO", log_format: LogFormat | None = None
) -> None:
    """Route structlog and the standard library's logging through one formatter."""
    log_format = log_format or LogSettings().format
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _service_adder(service),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_request_id,
        _add_trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta
    ]
    if log_format == "json":
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=final,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn sets up its own handlers before it imports the app: hand its records to ours,
    # so its start-up and error lines are structured like the rest.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx notes every call between services at INFO: our access logs already say it.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def bind_log_context(**values: object) -> None:
    """Add ids (user, project, ticket, event) to every later line of this request/task."""
    structlog.contextvars.bind_contextvars(
        **{key: str(value) for key, value in values.items() if value is not None}
    )


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """`bind_log_context` for a block: the ids are gone again after it."""
    with structlog.contextvars.bound_contextvars(
        **{key: str(value) for key, value in values.items() if value is not None}
    ):
        yield
