"""`GET /health`: the gateway's view of every backend's readiness."""

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


async def backend_state(backends: Backends, backend: Backend, timeout_seconds: float) -> str:
    try:
        async with backends.session(backend).get(
            backends.url(backend, READY_PATH),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            await response.read()
            return "ok" if response.status == HTTPStatus.OK else "unavailable"
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("%s readiness check failed: %r", backend, exc)
        return "unavailable"


def health_router(
    backends: Backends, timeout_seconds: float, revocations: RevocationFeed
) -> APIRouter:
    router = APIRouter()

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
