"""The gateway's health: `/health/live` and `/health/ready` for probes (this process
alone), `/health` for its view of every backend's readiness."""

from __future__ import annotations

import asyncio
import logging
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


def health_router(
    backends: Backends, timeout_seconds: float, revocations: RevocationFeed
) -> APIRouter:
    router = APIRouter()

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
        states = await asyncio.gather(
            *(backend_state(backends, backend, timeout_seconds) for backend in BACKENDS)
        )
        results = dict(zip(BACKENDS, states, strict=True))
        # Until the revocation list is seeded and fed, a revoked token could pass.
        revocation_state = revocations.state
        healthy = all(state == "ok" for state in states) and revocation_state == "ok"
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "backends": results,
                "revocations": revocation_state,
            },
            status_code=HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
        )

    return router
