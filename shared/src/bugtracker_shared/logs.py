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

import atexit
import logging
import queue
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO, cast

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


def _name_logger(_logger: Any, _method: str, event: EventDict) -> EventDict:
    name = event.pop("logger_name", None)
    if name is not None:
        event["logger"] = name
    return event


def _service_adder(service: str) -> structlog.types.Processor:
    def add_service(_logger: Any, _method: str, event: EventDict) -> EventDict:
        event["service"] = service
        return event

    return add_service


class _BackgroundWriter:
    """A file-like object whose lines a thread writes out, so the event loop never waits
    on a full pipe: under load, a slow reader of stderr (a terminal, `make up`'s log
    pump, a log shipper) stalled the gateway's loop in `write` (bench/, py-spy)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, text: str) -> int:
        self._lines.put(text)
        return len(text)

    def flush(self) -> None:
        """Lines are flushed by the writer thread as soon as it has written them."""

    def close(self) -> None:
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join(timeout=5)

    def _drain(self) -> None:
        while (text := self._lines.get()) is not None:
            try:
                self._stream.write(text)
                while not self._lines.empty():  # a burst: one flush for all of it
                    more = self._lines.get()
                    if more is None:
                        self._stream.flush()
                        return
                    self._stream.write(more)
                self._stream.flush()
            except (OSError, ValueError):  # the reader went away: nothing left to do
                return


_writers: dict[int, _BackgroundWriter] = {}


def _writer_for(stream: TextIO) -> _BackgroundWriter:
    """One writer thread per stream, however often logging is configured."""
    writer = _writers.get(id(stream))
    if writer is None:
        writer = _writers[id(stream)] = _BackgroundWriter(stream)
    return writer


def configure_logging(
    service: str,
    level: str = "INFO",
    log_format: LogFormat | None = None,
    *,
    background: bool = True,
) -> None:
    """One line format for the whole process.

    structlog's own loggers (the access log, our modules' `get_logger`) render straight
    to stderr, without the standard library's handler machinery: the access line is
    written on every request, and that path costs a third of the stdlib one. Records
    from `logging` (uvicorn, aio-pika, SQLAlchemy) go through the same processors via
    structlog's `ProcessorFormatter`.
    """
    log_format = log_format or LogSettings().format
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _service_adder(service),
        structlog.stdlib.add_log_level,
        _add_request_id,
        _add_trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[structlog.types.Processor] = []
    if log_format == "json":
        final += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        final.append(structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0))
    output = cast(TextIO, _writer_for(sys.stderr)) if background else sys.stderr
    structlog.configure(
        processors=[_name_logger, *shared, *final],
        logger_factory=structlog.WriteLoggerFactory(output),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Not cached: a test process configures several services one after another.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *shared,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn sets up its own handlers before it imports the app: hand its records to ours,
    # so its start-up and error lines are structured like the rest.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Our access line (by route template, with the ids as fields) replaces uvicorn's (raw
    # path): without handlers uvicorn skips building its line at all.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # httpx notes every call between services at INFO: our access logs already say it.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger=name`."""
    # Bound lazily (a proxy), so a later `configure_logging` still applies to it; the key
    # is renamed to `logger` by `_name_logger` (`logger` itself is taken by structlog).
    return structlog.get_logger(logger_name=name)


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
