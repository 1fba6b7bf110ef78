"""Process-wide structured logging with structlog.

Every line carries the service, the level, the logger, the request id and, where they are
known, the user, project, ticket and event ids (bound with `bind_log_context` or
`log_context`, or, for the project and ticket, the path parameters of the route that
answers the request), plus the trace and span ids when a span is current. Records from
the standard library's `logging` (uvicorn, aio-pika, SQLAlchemy, our modules) go through
the same processors, so one format covers the whole process.

`BUGTRACKER_LOG_FORMAT=json` (the default: containers and CI) writes one JSON object per
line; `console` (what `make up` sets) writes readable `key=value` lines.

The access line is written on every request, so its path is kept short (docs/adr/0024):
loggers are bound once per configuration, not per call; the ids live in one context
variable (a dict) instead of one per key; one processor adds every field; the renderers
are a prepared JSON encoder and a plain `key=value` join; and lines are handed to a
writer thread in batches, without waking it per line.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Literal, TextIO

import structlog
from opentelemetry import trace
from pydantic_settings import BaseSettings, SettingsConfigDict
from structlog.processors import format_exc_info

from bugtracker_shared.request_context import request_id_var

LogFormat = Literal["json", "console"]

# Context keys a log line may carry besides the request id; bound per request or event.
CONTEXT_KEYS = ("user_id", "project_id", "ticket_id", "event_id", "event_type")
# Path parameters worth a field of their own on every line of a request: (parameter, key).
LOGGED_PATH_PARAMS = (("project_ref", "project_id"), ("ticket_ref", "ticket_id"))


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_LOG_", extra="ignore")

    format: LogFormat = "json"


EventDict = MutableMapping[str, Any]

# The ids bound for the work in progress. One variable holding a dict that is replaced,
# never changed in place: a task started from a request keeps the ids it started with.
_NO_IDS: dict[str, str] = {}
_log_ids: ContextVar[dict[str, str]] = ContextVar("bugtracker_log_ids", default=_NO_IDS)
# The ASGI scope of the request in progress. The router adds the matched route's
# `path_params` to it after the middleware has started, so they are read when a line is
# written rather than bound in advance (no app-wide dependency for it).
_request_scope: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "bugtracker_request_scope", default=None
)

RequestTokens = tuple[Token[str | None], Token[dict[str, str]], Token[Mapping[str, Any] | None]]


def enter_request(request_id: str, scope: Mapping[str, Any]) -> RequestTokens:
    """A request starts: its id, no ids bound yet, and its scope for the path ids."""
    return (
        request_id_var.set(request_id),
        _log_ids.set(_NO_IDS),
        _request_scope.set(scope),
    )


def leave_request(tokens: RequestTokens) -> None:
    """The request is answered: what was current before it is current again."""
    request_id_var.reset(tokens[0])
    _log_ids.reset(tokens[1])
    _request_scope.reset(tokens[2])


def _strings(values: Mapping[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in values.items() if value is not None}


def bind_log_context(**values: object) -> None:
    """Add ids (user, project, ticket, event) to every later line of this request/task."""
    new = _strings(values)
    if new:
        _log_ids.set({**_log_ids.get(), **new})


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """`bind_log_context` for a block: the ids are gone again after it."""
    token = _log_ids.set({**_log_ids.get(), **_strings(values)})
    try:
        yield
    finally:
        _log_ids.reset(token)


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}  # as structlog's add_log_level
_stamp_cache: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    """ISO 8601 in UTC with microseconds (`2026-01-31T12:00:00.123456Z`); the part up to
    the second is formatted once a second."""
    global _stamp_cache  # noqa: PLW0603 (a per-process cache, replaced in one assignment)
    now = time.time()
    second = int(now)
    cached_second, prefix = _stamp_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp_cache = (second, prefix)
    return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


def _enricher(service: str) -> structlog.types.Processor:
    """The one processor before rendering: bound ids, path ids, service, level, request
    id, trace and span, timestamp. A field the call passed itself wins over a bound one."""

    def enrich(_logger: Any, method_name: str, event: EventDict) -> EventDict:
        ids = _log_ids.get()
        if ids:
            for key, value in ids.items():
                if key not in event:
                    event[key] = value
        scope = _request_scope.get()
        if scope is not None:
            params = scope.get("path_params")
            if params:
                for name, key in LOGGED_PATH_PARAMS:
                    if name in params and key not in event:
                        event[key] = str(params[name])
        event["service"] = service
        event["level"] = _LEVEL_NAMES.get(method_name, method_name)
        request_id = request_id_var.get()
        if request_id is not None and "request_id" not in event:
            event["request_id"] = request_id
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = format(context.trace_id, "032x")
            event["span_id"] = format(context.span_id, "016x")
        event["timestamp"] = _timestamp()
        return event

    return enrich


def _json_fallback(value: object) -> Any:
    """Values JSON has no type for: their `__structlog__()` or `repr()` (as structlog)."""
    custom = getattr(value, "__structlog__", None)
    return custom() if callable(custom) else repr(value)


_encode_json = json.JSONEncoder(default=_json_fallback, separators=(",", ":")).encode


def _render_json(logger: Any, method_name: str, event: EventDict) -> str:
    """One JSON object; an exception becomes its formatted traceback (`exception`). The
    encoder is made once, where `json.dumps(..., default=...)` makes one per call."""
    if "exc_info" in event:
        event = format_exc_info(logger, method_name, event)
    return _encode_json(event)


def _console_value(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _render_console(logger: Any, method_name: str, event: EventDict) -> str:
    """`timestamp [level    ] event [logger] key=value ...` (keys sorted), like structlog's
    ConsoleRenderer without colours, at a fraction of its cost; a traceback follows on
    the next lines."""
    if "exc_info" in event:
        event = format_exc_info(logger, method_name, event)
    exception = event.pop("exception", None)
    head = f"{event.pop('timestamp', '')} [{event.pop('level', ''):<9}] {event.pop('event', '')}"
    name = event.pop("logger", None)
    if name is not None:
        head += f" [{name}]"
    if event:
        head += " " + " ".join(f"{key}={_console_value(event[key])}" for key in sorted(event))
    return f"{head}\n{exception}" if exception else head


class _LineLogger:
    """structlog's output: each rendered line, with a newline, to the log stream."""

    __slots__ = ("_write",)

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write

    def msg(self, message: str) -> None:
        self._write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class _BackgroundWriter:
    """A file-like object whose lines a thread writes out, so the event loop never waits
    on a full pipe: under load, a slow reader of stderr (a terminal, `make up`'s log
    pump, a log shipper) stalled the gateway's loop in `write` (bench/, py-spy).

    A line is appended to a deque and the thread is not woken for it: it writes what has
    collected every `TICK_SECONDS`, or at once when `WAKE_AT_LINES` are waiting. Waking it
    per line (a queue's `put`) handed the GIL back and forth on every request, which
    py-spy showed as a third of the gateway's event loop (bench/request_path.py)."""

    TICK_SECONDS = 0.05
    WAKE_AT_LINES = 1000

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: deque[str] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, text: str) -> int:
        lines = self._lines
        lines.append(text)
        if len(lines) >= self.WAKE_AT_LINES:
            self._wake.set()
        return len(text)

    def flush(self) -> None:
        """Lines are flushed by the writer thread as soon as it has written them."""

    def close(self) -> None:
        if self._thread.is_alive():
            self._closing = True
            self._wake.set()
            self._thread.join(timeout=5)

    def _drain(self) -> None:
        lines = self._lines
        while True:
            self._wake.wait(self.TICK_SECONDS)
            self._wake.clear()
            closing = self._closing
            if lines:
                batch: list[str] = []
                try:
                    while True:
                        batch.append(lines.popleft())
                except IndexError:
                    pass
                try:
                    self._stream.write("".join(batch))
                    self._stream.flush()
                except (OSError, ValueError):  # the reader went away: nothing left to do
                    return
            if closing and not lines:
                return


class _DirectWriter:
    """Lines straight to the stream, flushed each (tests read them at once)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._stream.write(text)
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        """Every write is flushed already."""


_writers: dict[int, _BackgroundWriter] = {}


def _writer_for(stream: TextIO) -> _BackgroundWriter:
    """One writer thread per stream, however often logging is configured."""
    writer = _writers.get(id(stream))
    if writer is None:
        writer = _writers[id(stream)] = _BackgroundWriter(stream)
    return writer


class Logger:
    """A structlog logger whose lines carry `logger=<name>`.

    Its methods are those of a bound logger made once per `configure_logging` (structlog's
    lazy proxy re-binds on every call when not cached, and a cached one would keep the
    first configuration, which a test process changes per test)."""

    __slots__ = (
        "__weakref__",
        "critical",
        "debug",
        "error",
        "exception",
        "info",
        "name",
        "warning",
    )

    debug: Callable[..., Any]
    info: Callable[..., Any]
    warning: Callable[..., Any]
    error: Callable[..., Any]
    exception: Callable[..., Any]
    critical: Callable[..., Any]

    def __init__(self, name: str) -> None:
        self.name = name
        self.rebind()

    def rebind(self) -> None:
        """Bind to structlog's current configuration."""
        bound = structlog.get_logger().bind(logger=self.name)
        self.debug = bound.debug
        self.info = bound.info
        self.warning = bound.warning
        self.error = bound.error
        self.exception = bound.exception
        self.critical = bound.critical


_loggers: weakref.WeakSet[Logger] = weakref.WeakSet()


def get_logger(name: str) -> Logger:
    """A structlog logger whose lines carry `logger=name`; it follows later
    `configure_logging` calls."""
    logger = Logger(name)
    _loggers.add(logger)
    return logger


def configure_logging(
    service: str,
    level: str = "INFO",
    log_format: LogFormat | None = None,
    *,
    background: bool = True,
) -> None:
    """One line format for the whole process.

    structlog's own loggers (the access log, `get_logger`) render straight to the writer,
    without the standard library's handler machinery: the access line is written on every
    request, and that path costs a third of the stdlib one. Records from `logging`
    (uvicorn, aio-pika, SQLAlchemy) go through the same processors via structlog's
    `ProcessorFormatter`.
    """
    log_format = log_format or LogSettings().format
    enrich = _enricher(service)
    render = _render_json if log_format == "json" else _render_console
    output: _BackgroundWriter | _DirectWriter = (
        _writer_for(sys.stderr) if background else _DirectWriter(sys.stderr)
    )
    line_logger = _LineLogger(output.write)
    structlog.configure(
        processors=[enrich, render],
        logger_factory=lambda *_args: line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    for logger in list(_loggers):
        logger.rebind()
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                enrich,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, render],
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
