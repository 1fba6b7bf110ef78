"""The request path inside one process: the gateway app and a service app, without the
rest of the system (no PostgreSQL, no RabbitMQ, no uvicorn, no HTTP client).

    uv run python bench/request_path.py [--seconds 5] [--repeat 3]

Each app is called directly as an ASGI app by C coroutines in a closed loop (the scope,
receive and send a server would pass, built once per request), so what is measured is
the app's own work per request: middleware, routing, token check, rate limit, logging
and metrics, and for the gateway the aiohttp exchange with a trivial backend. The
backend runs in a child process on 127.0.0.1 (aiohttp, a fixed small JSON answer, the
JWKS of a throw-away key), so its CPU is not counted. Logs go to /dev/null through the
apps' own logging (the background writer thread included).

Rows:
- `gateway POST create`: POST /api/v1/projects/BENCH/tickets with a bearer token and a
  small JSON body, through `bugtracker_gateway.main.create_app` (rate limit raised so it
  counts but never refuses).
- `gateway GET`: GET /api/v1/tickets/BENCH-7, likewise.
- `service GET no-op`: a `service_app` with a no-op route GET /api/v1/tickets/{ticket_ref}
  (no token, no database): the shared middleware, FastAPI, logging, metrics.
- `service POST no-op`: POST /api/v1/projects/{project_ref}/tickets with a validated body.

Columns: requests per second (wall clock, one process on a shared machine) and CPU
microseconds per request (process CPU time / requests, all threads). It measures; it does
not assert. To compare with an older tree, run it with that tree's packages first on the
path, e.g. `PYTHONPATH=/tmp/before/shared/src:/tmp/before/gateway/src`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bugtracker_shared.web import StrictModel
from pydantic import Field

ASGIApp = Callable[..., Awaitable[None]]
BODY = json.dumps(
    {
        "title": "Crash when saving a draft",
        "description": "Steps:\n1. open a draft\n2. press **save**\n\nThe app exits.",
        "labels": ["bug", "editor"],
        "priority": "high",
    }
).encode()


# --- the trivial backend (child process) ---------------------------------------------


def _backend_main(port: int, jwk: str) -> None:
    from aiohttp import web

    jwks = {"keys": [json.loads(jwk)]}
    answer = json.dumps({"id": str(uuid.uuid4()), "key": "BENCH-1", "title": "x"}).encode()

    async def keys(_request: web.Request) -> web.Response:
        return web.json_response(jwks)

    async def revoked(_request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response({"openapi": "3.1.0", "info": {}, "paths": {}})

    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        status = 201 if request.method == "POST" else 200
        return web.Response(body=answer, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", keys)
    app.router.add_get("/internal/revoked-sessions", revoked)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/health/ready", ready)
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the backend did not listen on {port}")


# --- driving an ASGI app ----------------------------------------------------------------


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _one(app: ASGIApp, template: dict[str, Any], body: bytes) -> int:
    scope = {**template, "headers": list(template["headers"])}
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _drive(
    app: ASGIApp, template: dict[str, Any], body: bytes, seconds: float, concurrency: int
) -> tuple[float, float, int]:
    """(requests/s, CPU µs per request, non-2xx answers) over `seconds`, after a warm-up."""
    for _ in range(200):  # warm-up: caches, connections, first-use imports
        await _one(app, template, body)
    count = 0
    bad = 0
    deadline = 0.0

    async def client() -> None:
        nonlocal count, bad
        while time.perf_counter() < deadline:
            status = await _one(app, template, body)
            count += 1
            if not 200 <= status < 300:  # noqa: PLR2004
                bad += 1

    wall, cpu = time.perf_counter(), time.process_time()
    deadline = wall + seconds
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1e6, bad


# --- the apps --------------------------------------------------------------------------


class NewTicket(StrictModel):
    title: str
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    priority: str = "medium"


def _service_app() -> ASGIApp:
    from bugtracker_shared.service_app import service_app
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/api/v1/tickets/{ticket_ref}")
    async def get_ticket(ticket_ref: str) -> dict[str, str]:
        return {"key": ticket_ref}

    @router.post("/api/v1/projects/{project_ref}/tickets", status_code=201)
    async def create_ticket(project_ref: str, body: NewTicket) -> dict[str, str]:
        return {"project": project_ref, "title": body.title}

    def wire(_app: Any) -> Any:  # the lifespan is not run: the no-op routes need nothing
        raise NotImplementedError

    app: ASGIApp = service_app(name="bench", wire=wire, routers=[router], domain_errors={})
    return app


class Backend:
    """The trivial backend in a child process, and a key whose tokens it vouches for."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from jwt.algorithms import OKPAlgorithm

        self.key = Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.port = _free_port()
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [
                sys.executable,
                __file__,
                "--backend",
                str(self.port),
                json.dumps({**jwk, "kid": "bench", "alg": "EdDSA"}),
            ],
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def token(self, issuer: str, audience: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 3600,
            "role": "member",
        }
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": "bench", "typ": "at+jwt"}
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def _gateway_rows(
    backend: Backend,
    seconds: float,
    concurrency: int,
    rows: dict[str, list[tuple[float, float, int]]],
) -> None:
    from asgi_lifespan import LifespanManager
    from bugtracker_gateway.main import create_app
    from bugtracker_gateway.settings import Settings

    url = f"http://127.0.0.1:{backend.port}"
    settings = Settings(
        auth_url=url,
        projects_url=url,
        tickets_url=url,
        notifications_url=url,
        amqp_url="",
        internal_token="bench-internal-token-x",  # noqa: S106 (a throw-away value)
        rate_limit="100000000/minute",
        metrics_port=0,
    )
    token = backend.token(settings.issuer, settings.audience)
    common = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    create = _scope(
        "POST",
        "/api/v1/projects/BENCH/tickets",
        [
            *common,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    )
    get = _scope("GET", "/api/v1/tickets/BENCH-7", common)
    async with LifespanManager(create_app(settings), startup_timeout=30) as manager:
        rows["gateway POST create"].append(
            await _drive(manager.app, create, BODY, seconds, concurrency)
        )
        rows["gateway GET"].append(await _drive(manager.app, get, b"", seconds, concurrency))


async def _service_rows(
    seconds: float, concurrency: int, rows: dict[str, list[tuple[float, float, int]]]
) -> None:
    app = _service_app()
    get = _scope("GET", "/api/v1/tickets/BENCH-7", [(b"host", b"127.0.0.1:8003")])
    create = _scope(
        "POST",
        "/api/v1/projects/BENCH/tickets",
        [
            (b"host", b"127.0.0.1:8003"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    )
    rows["service GET no-op"].append(await _drive(app, get, b"", seconds, concurrency))
    rows["service POST no-op"].append(await _drive(app, create, BODY, seconds, concurrency))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--backend":  # noqa: PLR2004
        _backend_main(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is shown")
    parser.add_argument("--label", default="", help="printed above the table")
    args = parser.parse_args()
    os.environ.setdefault("BUGTRACKER_LOG_FORMAT", "json")
    # The apps log to stderr (a writer thread, still writing after a run): stderr goes
    # to /dev/null for good, the table (or a traceback) to stdout.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    rows: dict[str, list[tuple[float, float, int]]] = {
        name: []
        for name in (
            "gateway POST create",
            "gateway GET",
            "service GET no-op",
            "service POST no-op",
        )
    }
    backend = Backend()
    try:
        for _ in range(args.repeat):
            asyncio.run(_gateway_rows(backend, args.seconds, args.concurrency, rows))
            asyncio.run(_service_rows(args.seconds, args.concurrency, rows))
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        raise
    finally:
        backend.stop()
    title = f"{args.label + ': ' if args.label else ''}c={args.concurrency}, "
    title += f"{args.seconds:g} s x {args.repeat} (median), log format "
    title += os.environ["BUGTRACKER_LOG_FORMAT"]
    print(f"\n{title}")
    print(f"| {'path':<22} | {'req/s':>8} | {'CPU µs/req':>10} | {'non-2xx':>7} |")
    print(f"|{'-' * 24}|{'-' * 10}:|{'-' * 12}:|{'-' * 9}:|")
    for name, results in rows.items():
        rps = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        bad = sum(r[2] for r in results)
        print(f"| {name:<22} | {rps:>8.0f} | {cpu:>10.0f} | {bad:>7} |")


if __name__ == "__main__":
    main()
