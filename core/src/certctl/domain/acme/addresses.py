"""Which addresses the ACME validators may connect to (the SSRF guard).

A validator connects wherever an ACME client's DNS points it, so without this an account could
make certctl probe the cloud metadata service or its own loopback ports. Refused always:
unspecified, "this network" (0/8), multicast, link-local (169.254/16 holds the metadata
endpoints; fe80::/10), reserved and broadcast addresses, also when written as IPv4-mapped IPv6.
Loopback is refused unless ``CERTCTL_ACME_SERVER_VALIDATION_ALLOW_LOOPBACK`` (tests, labs).
Private addresses (RFC 1918, ULA) are allowed on purpose: certctl is the CA of internal
networks, whose hosts live there — a public CA would refuse them.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "parse_resolver", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why a validator must not connect to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    return None


def parse_resolver(value: str) -> tuple[str, int] | None:
    """``host[:port]`` of a DNS server as (IP, port); None for "" (the system's resolver).

    IPv6 with a port is written ``[::1]:53``. ValueError for anything but an IP literal: a
    resolver named by a host name would need a resolver to be found.
    """
    value = value.strip()
    if not value:
        return None
    host, port = value, 53
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not host[:port]: {value!r}")
        if rest:
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, raw = value.partition(":")
        port = int(raw)
    ipaddress.ip_address(host)  # raises ValueError
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    return host, port
