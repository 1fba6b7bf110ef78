"""One trace from the gateway through tickets and RabbitMQ to notifications.

The five apps run in this process, each under its own uvicorn server on a free port, on
the test run's real PostgreSQL and RabbitMQ, all reporting to one in-memory exporter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
import uvicorn
from bugtracker_devstack.processes import free_port
from bugtracker_devstack.stack import PROCESSES, SERVICES, Ports, Stack
from bugtracker_devstack.testing import migrated
from bugtracker_shared import tracing
from bugtracker_testkit import eventually
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

pytestmark = pytest.mark.integration

PASSWORD = "amber kettle drifts over 83 hills"


@pytest.fixture
async def traced_system(
    infra: Stack,
    monkeypatch: pytest.MonkeyPatch,
    app_factories: dict[str, Callable[[], FastAPI]],
) -> AsyncIterator[tuple[Stack, InMemorySpanExporter]]:
    for service in SERVICES:
        migrated(infra, service)
    # Ports of its own: the e2e suite may run the same system as processes beside it.
    stack = dataclasses.replace(
        infra,
        ports=Ports(**{p: free_port() for p in PROCESSES}, gateway_metrics=free_port()),
    )
    for process in PROCESSES:
        for key, value in stack.env(process).items():
            if key.startswith("BUGTRACKER_"):
                monkeypatch.setenv(key, value)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    try:
        async with httpx.AsyncClient(timeout=2) as probe:
            for process, factory in app_factories.items():
                config = uvicorn.Config(
                    factory(), host="127.0.0.1", port=stack.ports.of(process), log_config=None
                )
                server = uvicorn.Server(config)
                servers.append((server, asyncio.create_task(server.serve())))
                path = "/health" if process == "gateway" else "/health/ready"

                async def ready(url: str = stack.url(process) + path) -> bool:
                    try:
                        return (await probe.get(url)).status_code == httpx.codes.OK
                    except httpx.HTTPError:
                        return False

                await eventually(ready, what=f"{process} ready", within=30)
        yield stack, exporter
    finally:
        for server, _ in reversed(servers):
            server.should_exit = True
        await asyncio.gather(*(task for _, task in servers), return_exceptions=True)
        tracing.use_provider(None)


async def _user(api: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    created = await api.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": name}
    )
    assert created.status_code == 201, created.text
    login = await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return created.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


def _one(spans: Sequence[ReadableSpan], what: str, match: Callable[[ReadableSpan], bool]) -> Any:
    found = [span for span in spans if match(span)]
    assert len(found) == 1, f"{what}: {[s.name for s in found]}"
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_an_assignment_is_one_trace_from_the_gateway_to_the_notification(
    traced_system: tuple[Stack, InMemorySpanExporter],
) -> None:
    stack, exporter = traced_system
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=10) as api:
        _, ann = await _user(api, "ann")
        bob_id, bob = await _user(api, "bob")
        key = "T" + uuid.uuid4().hex[:6].upper()
        created = await api.post(
            "/api/v1/projects", json={"key": key, "name": "Traced"}, headers=ann
        )
        assert created.status_code == 201, created.text
        added = await api.post(
            f"/api/v1/projects/{key}/members",
            json={"user_id": bob_id, "role": "developer"},
            headers=ann,
        )
        assert added.status_code == 201, added.text
        ticket = await api.post(
            f"/api/v1/projects/{key}/tickets", json={"title": "Trace me"}, headers=ann
        )
        assert ticket.status_code == 201, ticket.text
        ticket_key = ticket.json()["key"]

        exporter.clear()
        assigned = await api.put(
            f"/api/v1/tickets/{ticket_key}/assignee", json={"assignee_id": bob_id}, headers=ann
        )
        assert assigned.status_code == 200, assigned.text

        async def notified() -> bool:
            listed = await api.get("/api/v1/notifications", headers=bob)
            return any(item["ticket_key"] == ticket_key for item in listed.json()["items"])

        await eventually(notified, what="Bob's notification")

    def consumer_span() -> ReadableSpan | None:
        return next(
            (
                span
                for span in exporter.get_finished_spans()
                if span.kind == SpanKind.CONSUMER and span.name == "notifications.events process"
            ),
            None,
        )

    async def consumed() -> ReadableSpan | None:
        return consumer_span()

    consumer = await eventually(consumed, what="the consumer span")
    spans = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == consumer.context.trace_id
    ]

    gateway = _one(
        spans,
        "gateway server span",
        lambda s: s.kind == SpanKind.SERVER and s.parent is None,
    )
    proxied = _one(
        spans,
        "gateway -> tickets client span",
        lambda s: s.kind == SpanKind.CLIENT and _parent_id(s) == gateway.context.span_id,
    )
    tickets = _one(
        spans,
        "tickets server span",
        lambda s: (
            s.name == "PUT /api/v1/tickets/{ticket_ref}/assignee" and s.kind == SpanKind.SERVER
        ),
    )
    assert _parent_id(tickets) == proxied.context.span_id
    publish = _one(
        spans,
        "publish span",
        lambda s: s.kind == SpanKind.PRODUCER and s.name == "ticket.assigned publish",
    )
    assert _parent_id(publish) == tickets.context.span_id
    assert _parent_id(consumer) == publish.context.span_id
    # The consumer's own work (its SQL) hangs below it, in the same trace.
    assert any(
        _parent_id(s) == consumer.context.span_id and s.kind == SpanKind.CLIENT for s in spans
    )
    # Tickets' own SQL is in the trace too.
    assert any(_parent_id(s) == tickets.context.span_id and "INSERT" in s.name for s in spans)
