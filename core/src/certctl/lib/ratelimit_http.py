"""Rate limits on HTTP requests: who a request is charged to, and the 429 when it is over.

The guard (:func:`certctl.domain.auth.guards.authorize`) calls :meth:`RequestLimits.check` for
every routed request, once it knows who the caller is:

- an authenticated actor (API key, user) is charged to its own bucket with the per-user budget
  (``CERTCTL_RATE_LIMIT_PER_USER_RPS`` / ``_PER_USER_BURST``; 0 means the global values), so
  callers behind one proxy or NAT do not share a budget;
- everyone else — public routes, requests whose credentials failed, demo mode's anonymous actor
  — is charged to its source address with the global budget (``CERTCTL_RATE_LIMIT_RPS`` /
  ``_BURST``). Failed authentications are charged too, so guessing keys costs budget.

The probes (``/health``, ``/ready``) and OCSP (its own per-address limit,
``CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN``) are exempt. The source address is the socket's peer,
or — when the peer is in ``CERTCTL_TRUSTED_PROXIES`` — the right-most address of
``X-Forwarded-For`` that is not itself a trusted proxy. IPv6 clients are charged per /64, the
block one subscriber gets, so rotating through one's own addresses gains nothing.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from certctl.errors import TooManyRequests
from certctl.lib.ratelimit import Budget, Clock, RateLimiter, bucket_key

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from certctl.domain.auth.actor import Actor
    from certctl.settings import Settings

__all__ = [
    "EXEMPT_PATHS",
    "EXEMPT_PREFIXES",
    "Network",
    "RequestLimits",
    "client_address",
    "parse_networks",
]

EXEMPT_PATHS = frozenset({"/health", "/ready"})
EXEMPT_PREFIXES = ("/.well-known/pki/ocsp/",)
"""OCSP has its own per-address limit (and its own fast path ahead of routing)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) to networks; ValueError names the bad entry."""
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _parse_hop(raw: str) -> _Address | None:
    """An ``X-Forwarded-For`` element: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1`` or ``[::1]:80``."""
    hop = raw.strip()
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: _Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(scope: Any, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the peer, or what trusted proxies say they forwarded for.

    The right-most ``X-Forwarded-For`` entry was written by the nearest proxy, the left-most by
    whoever sent the request first (anyone): so the chain is walked from the right while the
    hops are trusted proxies, and the first other address is the client. A malformed entry
    stops the walk at the last proxy that can be vouched for.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted or not peer:
        return peer or "unknown"
    current = _parse_hop(peer)
    if current is None or not _trusted(current, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    for raw in reversed(hops):
        hop = _parse_hop(raw)
        if hop is None:
            break
        current = hop
        if not _trusted(hop, trusted):
            break
    return str(current)


def address_key(address: str) -> str:
    """The bucket an address is charged to: itself, or its /64 for IPv6."""
    parsed = _parse_hop(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


class RequestLimits:
    """The server's general request limit (``CERTCTL_RATE_LIMIT_*``) and its buckets."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.enabled = settings.rate_limit_enabled
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.anonymous = Budget(settings.rate_limit_rps, settings.rate_limit_burst)
        self.per_user = Budget(
            settings.rate_limit_per_user_rps or settings.rate_limit_rps,
            settings.rate_limit_per_user_burst or settings.rate_limit_burst,
        )
        self.idle_ttl = float(settings.rate_limit_bucket_ttl_seconds)
        self.limiter = RateLimiter(
            settings.effective_database_url, clock=clock, lease=settings.rate_limit_lease
        )

    def address(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The caller's source address (see :func:`client_address`)."""
        return client_address(connection.scope, self.trusted_proxies)

    async def check(
        self, connection: ASGIConnection[Any, Any, Any, Any], actor: Actor | None
    ) -> None:
        """Charge the request to its actor (or its address); TooManyRequests when over."""
        if not self.enabled:
            return
        path = connection.scope.get("path", "")
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return
        if actor is not None and actor.type in ("APIKey", "User"):
            key, budget, who = bucket_key("actor", actor.type, actor.name), self.per_user, "caller"
        else:
            address = address_key(self.address(connection))
            key, budget, who = bucket_key("ip", address), self.anonymous, "address"
        await self.enforce(key, budget, f"the request limit of this {who}")

    async def enforce(self, key: str, budget: Budget, what: str) -> None:
        """Take a token of ``key`` or raise TooManyRequests naming ``what`` was exceeded."""
        wait = await self.limiter.take(key, budget)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(
                f"{what} is exceeded ({budget.rate:g} requests per second, bursts of "
                f"{budget.burst}); retry in {seconds} s",
                retry_after=seconds,
            )

    async def prune(self) -> int:
        """Forget buckets idle for ``CERTCTL_RATE_LIMIT_BUCKET_TTL`` (the janitor loop)."""
        return await self.limiter.prune(self.idle_ttl)

    async def aclose(self) -> None:
        """Release the shared buckets' connections."""
        await self.limiter.aclose()
