"""Who is really on the other end of a request: the client address and whether it came over TLS.

`X-Forwarded-For` and `X-Forwarded-Proto` are believed only when the socket peer is one of the
configured reverse proxies (OPSLOOP_TRUSTED_PROXIES, addresses or CIDR ranges); from anyone else
they are ignored, so a client cannot pick the address the login limiter counts it under.

uvicorn has its own proxy-header handling, on by default and trusting 127.0.0.1 and ::1
(FORWARDED_ALLOW_IPS): it rewrites `scope["client"]` from X-Forwarded-For before the app runs.
`peer()` undoes that: when the client it was given is exactly what uvicorn would have picked
from the header, the real peer was one of uvicorn's trusted hosts (loopback). A client that
names itself in the header is at worst counted as loopback — never as an address of its choice.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.1"
log = logging.getLogger("opsloop.proxies")


def parse_networks(spec: str | Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.7` → networks (a bare address is a /32 or /128). An item that is
    neither is left out, with an error in the log: trusting less never opens anything."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            log.error("OPSLOOP_TRUSTED_PROXIES: %r is not an address or CIDR range; ignored", item[:64])
    return tuple(networks)


def _host(item: str) -> str:
    """The host of one X-Forwarded-For item (`1.2.3.4`, `1.2.3.4:5`, `[::1]:5`, `::1`)."""
    item = item.strip()
    if item.startswith("["):
        return item[1 : item.find("]")] if "]" in item else item
    if item.count(":") == 1:
        return item.rsplit(":", 1)[0]
    return item


class TrustedProxies:
    def __init__(self, spec: str, uvicorn_spec: str | None = None) -> None:
        self.networks = parse_networks(spec)
        uv = uvicorn_spec if uvicorn_spec is not None else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        self._uvicorn_all = uv.strip() == "*"
        self._uvicorn = parse_networks([i for i in uv.split(",") if _is_ip_or_net(i)])  # uvicorn also takes names: not ours
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def _uvicorn_trusts(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._uvicorn)

    def _uvicorn_pick(self, forwarded: list[str]) -> str:
        if self._uvicorn_all:
            return _host(forwarded[0])
        for item in reversed(forwarded):
            if not self._uvicorn_trusts(host := _host(item)):
                return host
        return _host(forwarded[0])

    def peer(self, scope: Scope, forwarded: list[str] | None) -> str:
        """The socket peer's address, undoing uvicorn's rewrite (see the module docstring)."""
        client = scope.get("client")
        host = client[0] if client else ""
        if forwarded and host and host == self._uvicorn_pick(forwarded):
            return LOOPBACK
        return host

    def client(self, scope: Scope) -> str:
        """The address to count a client under: the peer, or, behind a trusted proxy, the nearest
        address in X-Forwarded-For that is not itself a trusted proxy."""
        forwarded = forwarded_for(scope)
        peer = self.peer(scope, forwarded)
        if not forwarded or not self.trusts(peer):
            return peer
        for item in reversed(forwarded):
            if not self.trusts(host := _host(item)):
                return host
        return _host(forwarded[0])

    def is_tls(self, scope: Scope) -> bool:
        """True when the browser's connection was TLS: our own listener's, or a trusted proxy's
        X-Forwarded-Proto (uvicorn's rewrite of `scope["scheme"]` is not believed)."""
        proto = header(scope, b"x-forwarded-proto")
        if proto is None:
            return scope.get("scheme") in ("https", "wss")
        peer = self.peer(scope, forwarded_for(scope))
        return self.trusts(peer) and proto.split(",")[0].strip().lower() in ("https", "wss")


def _is_ip_or_net(item: str) -> bool:
    try:
        ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return False
    return True


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def forwarded_for(scope: Scope) -> list[str]:
    items: list[str] = []
    for key, value in scope["headers"]:
        if key == b"x-forwarded-for":
            items.extend(i for i in value.decode("latin-1").split(",") if i.strip())
    return items


@functools.cache
def trusted_proxies() -> TrustedProxies:
    from opsloop.backend.config import get_settings

    return TrustedProxies(get_settings().OPSLOOP_TRUSTED_PROXIES)
