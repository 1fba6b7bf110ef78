"""OpenTelemetry tracing: off unless an OTLP endpoint is configured.

`configure_tracing` makes the process's tracer provider when the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (OTLP over HTTP; `OTEL_SERVICE_NAME` overrides the
component's name). Everything else here asks `tracing_enabled()` and does nothing when it
is off, so an untraced process pays nothing for the instrumentation. A test switches
tracing on with `use_provider` (an SDK provider with an in-memory exporter) before it
creates the apps, and off again after.

When on, a request is recorded with a probability of 5 % (`parentbased_traceidratio`,
0.05), so tracing in production costs little: a trace that started upstream (the gateway,
a `traceparent` from the client or the event being handled) is followed either way. The
standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` choose another sampler or
ratio (`OTEL_TRACES_SAMPLER_ARG=1.0` records every request; docs/adr/0024).

Across the broker the W3C trace context travels twice: in the CloudEvent itself (the
`traceparent`/`tracestate` attributes of the CloudEvents distributed-tracing extension,
set when the event is created inside a traced request and stored with the outbox row),
and in the AMQP headers of the message the relay publishes (`publish_span`). The
consumer continues the trace from the headers (`consume_span`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind, Tracer

from bugtracker_shared import trace_context

if TYPE_CHECKING:  # the event model imports this module; keep web and DB out of it
    import httpx
    from fastapi import FastAPI
    from fastapi.telemetry import TelemetryConfig
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("bugtracker.tracing")

TRACER_NAME = "bugtracker"
TRACE_HEADERS = ("traceparent", "tracestate")
# Probes and scrapes are not worth a trace each.
UNTRACED_URLS = "health,health/live,health/ready,metrics"
# FastAPI's native telemetry off: our instrumentation makes the spans when tracing is on,
# and FastAPI's would otherwise look for OTel's global providers on every request.
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_SAMPLE_RATIO = 0.05
_FIXED_SAMPLERS: dict[str, Sampler] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_on": DEFAULT_ON,
    "parentbased_always_off": DEFAULT_OFF,
}


_provider: TracerProvider | None = None


def use_provider(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: tracing off)."""
    global _provider  # noqa: PLW0603 (one provider per process, like OTel's own global)
    _provider = provider
    trace_context.set_enabled(provider is not None)


def traces_sampler(environ: Mapping[str, str] = os.environ) -> Sampler:
    """The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name, by default
    `parentbased_traceidratio` at 5 %. A ratio that is not a number in [0, 1] keeps the
    default ratio (the SDK would fall back to 1.0: every request)."""
    name = (environ.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
    if name in _FIXED_SAMPLERS:
        return _FIXED_SAMPLERS[name]
    if name not in ("traceidratio", "parentbased_traceidratio"):
        logger.warning("unknown OTEL_TRACES_SAMPLER %r: using %s", name, DEFAULT_SAMPLER)
        name = DEFAULT_SAMPLER
    ratio = DEFAULT_SAMPLE_RATIO
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG")
    if argument:
        try:
            ratio = float(argument)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            logger.warning("OTEL_TRACES_SAMPLER_ARG %r is not a ratio: using 0.05", argument)
            ratio = DEFAULT_SAMPLE_RATIO
    root = TraceIdRatioBased(ratio)
    return root if name == "traceidratio" else ParentBased(root)


def configure_tracing(service: str) -> bool:
    """Make an OTLP-exporting provider once per process, if an endpoint is set."""
    if tracing_enabled():
        return True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    # Imported here: the exporter pulls in protobuf, which an untraced process never needs.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"bugtracker-{service}"}
        ),
        sampler=traces_sampler(),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_provider(provider)
    trace.set_tracer_provider(provider)  # for any library that asks OTel's global
    return True


def tracing_enabled() -> bool:
    return _provider is not None


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def tracer() -> Tracer:
    return (_provider or trace.NoOpTracerProvider()).get_tracer(TRACER_NAME)


def instrument_app(app: FastAPI) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
        meter_provider=NoOpMeterProvider(),
    )


def instrument_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement of this engine (not every engine of the process)."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    meter = NoOpMeterProvider().get_meter(TRACER_NAME)
    EngineTracer(  # type: ignore[no-untyped-call]
        (_provider or trace.NoOpTracerProvider()).get_tracer(
            "opentelemetry.instrumentation.sqlalchemy"
        ),
        engine.sync_engine,
        meter.create_up_down_counter("db.client.connections.usage"),
    )


def instrument_http_client(client: httpx.AsyncClient) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)


def aiohttp_trace_configs() -> list[Any]:
    """Trace configs for an aiohttp ClientSession (the gateway's proxy); none when off."""
    if not tracing_enabled():
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=_provider, meter_provider=NoOpMeterProvider())]


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP header values may arrive as bytes; the propagator wants strings."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_getter = _HeaderGetter()


@contextmanager
def publish_span(
    routing_key: str, event_id: str, parent: Mapping[str, Any], headers: dict[str, str]
) -> Iterator[Span | None]:
    """A PRODUCER span, child of the trace the event was created in; fills `headers` with
    the context the consumer continues from. A no-op when tracing is off."""
    if not tracing_enabled():
        yield None
        return
    parent_context = propagate.extract(parent, getter=_getter)
    with tracer().start_as_current_span(
        f"{routing_key} publish",
        context=parent_context,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.destination.name": routing_key,
            "messaging.message.id": event_id,
        },
    ) as span:
        propagate.inject(headers)
        yield span


@contextmanager
def consume_span(
    queue: str, routing_key: str, event_id: str, headers: Mapping[str, Any]
) -> Iterator[Span | None]:
    """A CONSUMER span continuing the publisher's trace from the message headers."""
    if not tracing_enabled():
        yield None
        return
    parent_context = propagate.extract(headers, getter=_getter)
    token = otel_context.attach(parent_context)
    try:
        with tracer().start_as_current_span(
            f"{queue} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": routing_key,
                "messaging.consumer.group.name": queue,
                "messaging.message.id": event_id,
            },
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
