"""Who the client is (docs/adr/0027).

uvicorn runs the gateway without its proxy-headers middleware (`--no-proxy-headers`), so
the scope's `client` is the socket peer. This middleware, outermost but for tracing,
decides the client address and scheme once for everything after it (rate limits, the
access line, HSTS, the headers the backends get):

- the peer is one of `BUGTRACKER_GATEWAY_TRUSTED_PROXIES` (addresses or networks; none
  by default): the client is the right-most `X-Forwarded-For` address that is not a
  trusted proxy (the one the nearest untrusted hop was seen as; what a client wrote to
  the left of it is ignored), and the scheme the last `X-Forwarded-Proto` value;
- any other peer: the client is the peer and the scheme the connection's, whatever
  forwarding headers the request carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> TrustedProxies:
        """Comma-separated addresses or CIDR networks ("10.0.0.0/8, 192.0.2.7")."""
        return cls(
            tuple(
                ipaddress.ip_network(item.strip(), strict=False)
                for item in spec.split(",")
                if item.strip()
            )
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, host: object) -> bool:
        if not self.networks or not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip())
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str:
    """The client's address: from `X-Forwarded-For` (every header line, in order) only
    when the peer is a trusted proxy, as the right-most address that is not one."""
    if peer not in trusted:
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer  # only proxies on the way: the farthest one


class ClientAddressMiddleware:
    """Puts the client address and scheme the gateway trusts in the scope (`client`,
    `scheme`), as uvicorn's proxy-headers middleware would for its trusted peers."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and peer[0] in self.trusted:
            forwarded_for: list[str] = []
            proto: str | None = None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    # Several values: the last one is what the nearest proxy saw.
                    proto = value.decode("latin-1").split(",")[-1].strip().lower()
            host = client_address(str(peer[0]), forwarded_for, self.trusted)
            if host != peer[0]:
                scope["client"] = (host, 0)
            if proto in _SCHEMES:
                scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
        await self.app(scope, receive, send)
