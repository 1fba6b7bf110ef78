"""The CloudEvents 1.0 envelope every Bugtracker event travels in (structured JSON)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bugtracker_shared.event_schemas import EVENT_DATA
from bugtracker_shared.trace_context import current_trace_context

EXCHANGE = "bugtracker.events"
DEAD_LETTER_EXCHANGE = "bugtracker.dlx"
# Where the broker puts events no queue is bound to (an alternate exchange, set by policy
# on EXCHANGE; see docs/adr/0009), so they can be inspected and replayed.
UNROUTED_EXCHANGE = "bugtracker.unrouted"
UNROUTED_QUEUE = "bugtracker.unrouted"
CONTENT_TYPE = "application/cloudevents+json"


def event_type(name: str) -> str:
    """`ticket.assigned` -> `io.bugtracker.ticket.assigned.v1`."""
    return f"io.bugtracker.{name}.v1"


def event_name(type_: str) -> str:
    """`io.bugtracker.ticket.assigned.v1` -> `ticket.assigned` (the routing key)."""
    prefix, suffix = "io.bugtracker.", ".v1"
    if not (type_.startswith(prefix) and type_.endswith(suffix)):
        raise ValueError(f"not a Bugtracker event type: {type_}")
    return type_[len(prefix) : -len(suffix)]


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = "1.0"
    id: uuid.UUID
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: str = "application/json"
    actorid: str | None = None
    correlationid: str | None = None
    sequence: int = Field(ge=0)
    data: dict[str, Any]
    # CloudEvents distributed-tracing extension: the W3C context of the change that made
    # the event, when it was traced, so the trace goes on through the broker.
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def name(self) -> str:
        return event_name(self.type)


def new_event(
    name: str,
    *,
    service: str,
    subject: uuid.UUID,
    sequence: int,
    data: BaseModel,
    actor_id: uuid.UUID | None,
    correlation_id: str | None,
) -> CloudEvent:
    """A new event `name` whose `data` is the model event_schemas declares for it
    (`EVENT_DATA[name]`, that very class), serialised as it travels."""
    expected = EVENT_DATA.get(name)
    if expected is None:
        raise ValueError(f"no Bugtracker event is named {name}")
    if type(data) is not expected:
        raise TypeError(f"the data of {name} is a {expected.__name__}, not a {type(data).__name__}")
    return raw_event(
        name,
        service=service,
        subject=subject,
        sequence=sequence,
        data=data.model_dump(mode="json", by_alias=True),
        actor_id=actor_id,
        correlation_id=correlation_id,
    )


def raw_event(
    name: str,
    *,
    service: str,
    subject: uuid.UUID,
    sequence: int,
    data: dict[str, Any],
    actor_id: uuid.UUID | None,
    correlation_id: str | None,
) -> CloudEvent:
    """The envelope around `data` as given, unchecked: for tests that need an event no
    producer publishes (a made-up type, a malformed payload). Producers use `new_event`."""
    trace_context = current_trace_context()
    return CloudEvent(
        id=uuid.uuid4(),
        source=f"/bugtracker/{service}",
        type=event_type(name),
        subject=str(subject),
        time=datetime.now(UTC),
        actorid=str(actor_id) if actor_id else None,
        correlationid=correlation_id,
        sequence=sequence,
        data=data,
        traceparent=trace_context.get("traceparent"),
        tracestate=trace_context.get("tracestate"),
    )
