"""Who is at the other end of a request: the connection's peer, trusted proxies, the client.

Trust comes from the connection, never from what a request says about itself: forwarding
headers count only from a peer in `http.trusted_proxies` (uvicorn's `--forwarded-allow-ips`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports is_loopback without the web stack
    from fastapi import Request

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def forwarded(request: Request) -> bool:
    """True when the request says it passed a proxy (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`)."""
    return any(
        name == "forwarded" or name.startswith("x-forwarded-") or name == "x-real-ip"
        for name in request.headers
    )


class TrustedProxies:
    """The proxies allowed to name the client (X-Forwarded-For) and to vouch for a user."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(e, strict=False) for e in entries
        )

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def peer(self, request: Request) -> str:
        """The address of the connection itself."""
        return request.client.host if request.client else ""

    def via_trusted(self, request: Request) -> bool:
        return self.peer(request) in self

    def client(self, request: Request) -> str:
        """The client's address: the peer, or through trusted proxies the nearest untrusted
        address in X-Forwarded-For (read right to left, as uvicorn does)."""
        peer = self.peer(request)
        if peer not in self:
            return peer
        hops = [
            h.strip()
            for value in request.headers.getlist("x-forwarded-for")
            for h in value.split(",")
            if h.strip()
        ]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else peer

    def scheme(self, request: Request) -> str:
        proto = request.headers.get("x-forwarded-proto", "").strip().lower()
        if self.via_trusted(request) and proto in ("http", "https"):
            return proto
        return request.url.scheme
