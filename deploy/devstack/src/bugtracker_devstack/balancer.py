"""A TCP round-robin balancer in front of a service's replicas, for the test stack: what a
Kubernetes Service or compose's DNS round robin gives in production, so that every other
process keeps one URL per service however many replicas serve it.

Connection-level, like a Service: each accepted connection goes to the next replica, and
a replica that refuses the connection (stopped, restarting) is skipped for the next one.
Like a Service without ready endpoints, it stops listening while no replica accepts
connections (probed every `PROBE_SECONDS`), so a caller then sees a refused connection, not
one that is accepted and dropped. It runs its own event loop in a daemon thread and
listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Sequence

PROBE_SECONDS = 0.1


class Balancer:
    def __init__(self, port: int, backends: Sequence[int]) -> None:
        self.port = port
        self.backends = list(backends)
        self._next = itertools.cycle(range(len(self.backends)))
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"balancer-{port}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        await self._follow_replicas()
        self._watch = asyncio.create_task(self._watch_replicas())

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # The connections still open end with the balancer.
            open_connections = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in open_connections:
                task.cancel()
            await asyncio.gather(*open_connections, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    async def _watch_replicas(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            await self._follow_replicas()

    async def _follow_replicas(self) -> None:
        """Listen while a replica accepts connections, and only then."""
        up = any([await _accepts(port) for port in self.backends])
        if up and self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        elif not up and self._server is not None:
            self._server.close()
            self._server = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.backends:
            index = next(self._next)
            try:
                streams = await asyncio.open_connection("127.0.0.1", self.backends[index])
            except OSError:
                continue  # this replica is down: the next one
            return streams
        return None

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        backend = await self._connect()
        if backend is None:  # every replica is down: the client sees a refused connection
            client_out.close()
            return
        backend_in, backend_out = backend
        await asyncio.gather(
            _pipe(client_in, backend_out), _pipe(backend_in, client_out), return_exceptions=True
        )
        for writer in (backend_out, client_out):
            with contextlib.suppress(Exception):
                writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy one direction until its end, then pass the end on (a half close): the other
    direction may still be answering. A side that resets the connection ends it: the
    error stays here, so that no task of this (test) process ends with an exception whose
    traceback is formatted in the balancer's thread (Python 3.11's traceback parses
    source with `ast`, and 3.11 before 3.11.8 corrupts `ast.parse` running in two threads
    at once: pytest's assertion rewriting failed with "AST constructor recursion depth
    mismatch", CPython gh-106905)."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True
