"""One pooled aiohttp session per backend, plus one for the event streams (a pool of
their own, docs/adr/0026), opened and closed by the app's lifespan, and the choice of
replica: round robin over a backend's URLs, skipping for a short time one that refused a
connection (passive health).

aiohttp rather than httpx on this path: measured here at 50 concurrent clients, a proxy on
aiohttp's ClientSession kept about 59 % of direct throughput, httpx on the aiohttp
transport about 30 % and httpx on its own transport about 6 % (docs/architecture.md,
"HTTP between processes").
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator

import aiohttp
from bugtracker_shared import tracing
from yarl import URL

from bugtracker_gateway.routing import BACKENDS, Backend
from bugtracker_gateway.settings import Settings

logger = logging.getLogger("bugtracker.gateway.backends")

# Below uvicorn's default keep-alive (5 s): the gateway, not the backend, closes an idle
# connection, so a request is never sent down one the backend is closing (aiohttp
# retries only idempotent methods on a dropped pooled connection).
KEEPALIVE_SECONDS = 4.0


class Replicas:
    """A backend's base URLs: round robin, minus those marked down until a moment passes."""

    def __init__(
        self, urls: tuple[str, ...], down_seconds: float, clock: Callable[[], float]
    ) -> None:
        self.urls = urls
        self._down_seconds = down_seconds
        self._clock = clock
        self._turn: Iterator[int] = itertools.cycle(range(len(urls)))
        self._down_until: dict[str, float] = {}

    def next(self) -> str:
        """The next replica that is not marked down; when all are, the next one anyway
        (better to try than to refuse without asking)."""
        now = self._clock()
        first = None
        for _ in self.urls:
            url = self.urls[next(self._turn)]
            first = first or url
            if self._down_until.get(url, 0.0) <= now:
                return url
        assert first is not None  # noqa: S101 (urls is never empty)
        return first

    def mark_down(self, url: str) -> None:
        if len(self.urls) > 1:  # with one replica there is nothing else to try
            self._down_until[url] = self._clock() + self._down_seconds
            logger.warning("%s refused a connection; skipped for %ss", url, self._down_seconds)

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > self._clock()


class Backends:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._sessions: dict[Backend, aiohttp.ClientSession] = {}
        self._stream_session: aiohttp.ClientSession | None = None
        self.replicas: dict[Backend, Replicas] = {
            backend: Replicas(settings.backend_urls(backend), settings.replica_down_seconds, clock)
            for backend in BACKENDS
        }

    async def open(self) -> None:
        for backend in BACKENDS:
            self._sessions[backend] = self._new_session(self._settings.pool_limit_per_backend)
        # Event streams hold their connection for minutes: a pool of their own, so that
        # ordinary requests and the health probes never wait behind them (docs/adr/0026).
        self._stream_session = self._new_session(self._settings.stream_connection_limit)

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_SECONDS),
            # Each proxied exchange runs under the gateway's own deadline
            # (asyncio.timeout), so an event stream is not cut after it.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._settings.connect_timeout_seconds
            ),
            # A proxy passes bytes through: no shared cookies between callers, no
            # decompression, no headers the caller did not send.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            # Client spans and the traceparent header, when tracing is on.
            trace_configs=tracing.aiohttp_trace_configs(),
        )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        stream_session, self._stream_session = self._stream_session, None
        for session in sessions.values():
            await session.close()
        if stream_session is not None:
            await stream_session.close()

    def session(self, backend: Backend) -> aiohttp.ClientSession:
        try:
            return self._sessions[backend]
        except KeyError:
            raise RuntimeError("the backend sessions are not open (lifespan not run)") from None

    @property
    def stream_session(self) -> aiohttp.ClientSession:
        """The session of the event streams, to every backend (its own connection pool)."""
        if self._stream_session is None:
            raise RuntimeError("the backend sessions are not open (lifespan not run)")
        return self._stream_session

    def base_url(self, backend: Backend) -> str:
        """The replica the next request to `backend` goes to."""
        return self.replicas[backend].next()

    def url(
        self, backend: Backend, raw_path: str, query_string: str = "", *, base: str | None = None
    ) -> URL:
        """The backend URL for an already percent-encoded path and query string."""
        url = (base or self.base_url(backend)) + raw_path
        if query_string:
            url += "?" + query_string
        return URL(url, encoded=True)
