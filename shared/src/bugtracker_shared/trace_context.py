"""The current trace context as W3C headers, for events to carry (the CloudEvents
distributed-tracing extension).

A contract module: events (and so the application layers that build them) need it, and
it depends on the OpenTelemetry API only; `bugtracker_shared.tracing`, the adapter that
sets tracing up for web, HTTP and database libraries, switches it on.
"""

from __future__ import annotations

from opentelemetry import propagate

_enabled = False


def set_enabled(enabled: bool) -> None:
    global _enabled  # noqa: PLW0603 (one setting per process, like OTel's own global)
    _enabled = enabled


def current_trace_context() -> dict[str, str]:
    """The current span's context as W3C headers (empty outside a recorded span)."""
    carrier: dict[str, str] = {}
    if _enabled:
        propagate.inject(carrier)
    return carrier
