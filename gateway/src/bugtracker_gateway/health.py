"""The gateway's health: `/health/live` and `/health/ready` for probes (this process
alone), `/health` for its view of every backend's readiness.

`/health` also says how the rate limits are counted (`shared` by every replica, `local`
to this one, `local (store unavailable)` while the shared store is out, or `off`): a
store outage fails open and does not make the gateway unhealthy or unready.

`/health` is public: it answers from the backends' state as last probed, and probes them
again (every replica's `/health/ready`, which checks its database) at most every
`health_refresh_seconds`, one round of probes at a time however many requests come in,
so that it cannot be used to hammer the backends' databases.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from http import HTTPStatus

import aiohttp
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bugtracker_gateway.backends import Backends
from bugtracker_gateway.revocations import RevocationFeed
from bugtracker_gateway.routing import BACKENDS, Backend

logger = logging.getLogger("bugtracker.gateway.health")

READY_PATH = "/health/ready"


async def _replica_ready(
    backends: Backends, backend: Backend, base: str, timeout_seconds: float
) -> bool:
    try:
        async with backends.session(backend).get(
            backends.url(backend, READY_PATH, base=base),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            await response.read()
            return response.status == HTTPStatus.OK
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("%s (%s) readiness check failed: %r", backend, base, exc)
        return False


async def backend_state(backends: Backends, backend: Backend, timeout_seconds: float) -> str:
    """`ok` when at least one replica of the backend is ready."""
    ready = await asyncio.gather(
        *(
            _replica_ready(backends, backend, base, timeout_seconds)
            for base in backends.replicas[backend].urls
        )
    )
    return "ok" if any(ready) else "unavailable"


class BackendStates:
    """Every backend's state as last probed, probed again when older than
    `refresh_seconds` by one round of probes that concurrent callers share."""

    def __init__(
        self,
        backends: Backends,
        timeout_seconds: float,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backends = backends
        self._timeout = timeout_seconds
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._states: dict[Backend, str] = {}
        self._probed_at = -math.inf
        self._probing: asyncio.Task[dict[Backend, str]] | None = None

    async def current(self) -> dict[Backend, str]:
        if self._states and self._clock() - self._probed_at < self._refresh_seconds:
            return self._states
        if self._probing is None:
            self._probing = asyncio.create_task(self._probe(), name="health-probe")
        # Shielded: a caller that goes away does not cancel the others' round.
        return await asyncio.shield(self._probing)

    async def _probe(self) -> dict[Backend, str]:
        try:
            states = await asyncio.gather(
                *(backend_state(self._backends, backend, self._timeout) for backend in BACKENDS)
            )
            self._states = dict(zip(BACKENDS, states, strict=True))
            self._probed_at = self._clock()
            return self._states
        finally:
            self._probing = None


def health_router(
    backends: Backends,
    timeout_seconds: float,
    revocations: RevocationFeed,
    *,
    refresh_seconds: float = 3.0,
    rate_limits: Callable[[], str] = lambda: "off",
) -> APIRouter:
    router = APIRouter()
    backend_states = BackendStates(backends, timeout_seconds, refresh_seconds)

    @router.get("/health/live", include_in_schema=False)
    async def live() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        # Ready once the revocation list is loaded: before that a revoked token could
        # pass. The backends' state is /health's business: a backend that is down must
        # not take every gateway out of rotation (its routes answer 503 on their own).
        seeded = revocations.seeded
        return JSONResponse(
            {"status": "ok" if seeded else "starting", "revocations": revocations.state},
            status_code=HTTPStatus.OK if seeded else HTTPStatus.SERVICE_UNAVAILABLE,
        )

    @router.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        results = await backend_states.current()
        # Until the revocation list is seeded and fed, a revoked token could pass.
        revocation_state = revocations.state
        healthy = all(state == "ok" for state in results.values()) and revocation_state == "ok"
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "backends": results,
                "revocations": revocation_state,
                "rate_limits": rate_limits(),
            },
            status_code=HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
        )

    return router
