"""A real HTTP server that receives webhook deliveries, for tests and benchmarks: it
listens on 127.0.0.1 at a free port, keeps every request it is sent, and answers what
the test tells it to (a status per call, a delay, a `Retry-After`)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 204
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    """`answer(received)` decides each answer (204 by default); `received` lists every
    request in arrival order, and `arrived` is set each time one arrives."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Answer] = lambda _: Answer()
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        got = Received(
            path=request.path_qs,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
            at=time.monotonic(),
        )
        self.received.append(got)
        self.arrived.set()
        answer = self.answer(got)
        if answer.delay_seconds:
            await asyncio.sleep(answer.delay_seconds)
        return web.Response(status=answer.status, headers=answer.headers)

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.received]


@asynccontextmanager
async def receiving(answer: Callable[[Received], Answer] | None = None) -> AsyncIterator[Receiver]:
    """A receiver listening until the block ends."""
    receiver = Receiver()
    if answer is not None:
        receiver.answer = answer
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    receiver.port = listener.getsockname()[1]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
