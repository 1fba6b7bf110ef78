"""One pooled aiohttp session per backend, opened and closed by the app's lifespan.

aiohttp rather than httpx on this path: see DESIGN.md, "HTTP clients between processes".
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from bugtracker_gateway.routing import BACKENDS, Backend
from bugtracker_gateway.settings import Settings

# Below uvicorn's default keep-alive (5 s): the gateway, not the backend, closes an idle
# connection, so a request is never sent down one the backend is closing (aiohttp
# retries only idempotent methods on a dropped pooled connection).
KEEPALIVE_SECONDS = 4.0


class Backends:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sessions: dict[Backend, aiohttp.ClientSession] = {}

    async def open(self) -> None:
        for backend in BACKENDS:
            self._sessions[backend] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._settings.pool_limit_per_backend,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                ),
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
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def session(self, backend: Backend) -> aiohttp.ClientSession:
        try:
            return self._sessions[backend]
        except KeyError:
            raise RuntimeError("the backend sessions are not open (lifespan not run)") from None

    def url(self, backend: Backend, raw_path: str, query_string: str = "") -> URL:
        """The backend URL for an already percent-encoded path and query string."""
        url = self._settings.backend_url(backend) + raw_path
        if query_string:
            url += "?" + query_string
        return URL(url, encoded=True)
