"""Answers the gateway shapes for every response: the header size limit (431), security
headers, and no `Server` header (uvicorn's own is switched off with `--no-server-header`
wherever the gateway is started: devstack, Dockerfile)."""

from __future__ import annotations

from bugtracker_shared.problems import problem_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = b"max-age=63072000; includeSubDomains"
NO_STORE_PREFIXES = ("/api/v1/auth/",)  # tokens and credentials must not be cached


class HeaderSizeLimitMiddleware:
    """431 when the request's header lines together exceed `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                response = problem_response(
                    431,
                    "request_header_fields_too_large",
                    f"The request headers are larger than {self.limit} bytes.",
                    instance=scope.get("path"),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _over_tls(scope: Scope) -> bool:
    """The request's scheme as the gateway trusts it: the connection's, or a trusted
    proxy's `X-Forwarded-Proto` (bugtracker_gateway.forwarding); a client's own
    `X-Forwarded-Proto` never turns HSTS on."""
    return scope.get("scheme") == "https"


_DROPPED = frozenset({b"server", b"x-powered-by"})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        no_store = path.startswith(NO_STORE_PREFIXES)
        tls = _over_tls(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = []
                nosniff = referrer_policy = False
                for name, value in message.get("headers", ()):
                    lower = name.lower()
                    if lower in _DROPPED or (no_store and lower == b"cache-control"):
                        continue
                    nosniff = nosniff or lower == b"x-content-type-options"
                    referrer_policy = referrer_policy or lower == b"referrer-policy"
                    headers.append((name, value))
                if not nosniff:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if not referrer_policy:
                    headers.append((b"referrer-policy", b"no-referrer"))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                if tls:
                    headers.append((b"strict-transport-security", HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
