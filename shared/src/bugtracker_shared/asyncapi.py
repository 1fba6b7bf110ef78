"""docs/asyncapi.yaml, generated from the event models (bugtracker_shared.event_schemas).

`uv run python -m bugtracker_shared.asyncapi > docs/asyncapi.yaml` rewrites the file; a test
fails while the checked-in file differs from what the models produce.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from bugtracker_shared.event_schemas import EVENT_DATA, source_service
from bugtracker_shared.events import CONTENT_TYPE, EXCHANGE, event_type

REF_TEMPLATE = "#/components/schemas/{model}"


class CloudEventEnvelope(BaseModel):
    """CloudEvents 1.0, structured JSON mode; `id` is the consumers' dedupe key."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: uuid.UUID
    source: str = Field(description="`/bugtracker/<service>`")
    type: str = Field(description="`io.bugtracker.<event name>.v1`")
    subject: str = Field(description="The aggregate's id.")
    time: datetime
    datacontenttype: Literal["application/json"]
    actorid: str | None = Field(default=None, description="Who acted (a user id).")
    correlationid: str | None = Field(default=None, description="The request id.")
    sequence: int = Field(ge=0, description="The aggregate's version after the change.")
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context of the change (CloudEvents distributed-tracing "
        "extension), present when tracing is on; the AMQP headers carry it too.",
    )
    tracestate: str | None = Field(default=None, description="W3C trace state, with it.")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


def envelope_models() -> dict[str, type[BaseModel]]:
    """Event name -> its whole message: the envelope with this event's `type` and `data`."""
    models: dict[str, type[BaseModel]] = {}
    for name, data_model in EVENT_DATA.items():
        type_literal = cast(Any, Literal)[event_type(name)]
        source_literal = cast(Any, Literal)[f"/bugtracker/{source_service(name)}"]
        models[name] = create_model(
            f"{_camel(name)}Event",
            __base__=CloudEventEnvelope,
            __doc__=f"The `{name}` event.",
            type=(type_literal, ...),
            source=(source_literal, ...),
            data=(data_model, ...),
        )
    return models


def document() -> dict[str, Any]:
    envelopes = envelope_models()
    _, definitions = models_json_schema(
        [(model, "validation") for model in envelopes.values()], ref_template=REF_TEMPLATE
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    exchange_binding = {
        "is": "routingKey",
        "exchange": {
            "name": EXCHANGE,
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        },
        "bindingVersion": "0.3.0",
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, model in envelopes.items():
        key = name.replace(".", "_")
        messages[key] = {
            "name": name,
            "title": event_type(name),
            "summary": (EVENT_DATA[name].__doc__ or name).strip().splitlines()[0],
            "contentType": CONTENT_TYPE,
            "payload": {"$ref": REF_TEMPLATE.format(model=model.__name__)},
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
        }
        channels[key] = {
            "address": name,
            "description": f"Routing key `{name}` on the topic exchange `{EXCHANGE}`.",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {"amqp": exchange_binding},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "summary": f"The {source_service(name)} service publishes `{name}`.",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Bugtracker events",
            "version": "1.0.0",
            "description": (
                "Every event Bugtracker publishes on RabbitMQ. Exchange "
                f"`{EXCHANGE}` (durable topic); routing key = event name; body = a "
                "CloudEvents 1.0 envelope in structured JSON mode. Messages are persistent "
                "and published with confirms. Bind your own durable queue (for example to "
                "`ticket.#`) and drop duplicates by the event `id`. Generated from "
                "bugtracker_shared.event_schemas; do not edit by hand."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "`make up` (user guest, localhost only)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases: the file stays readable for people and simple tools."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 (PyYAML signature)
        return True


def render() -> str:
    return yaml.dump(
        document(), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100
    )


if __name__ == "__main__":
    sys.stdout.write(render())
