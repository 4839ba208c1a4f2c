"""Which addresses the ACME validators may connect to (the SSRF guard).

A validator connects wherever an ACME client's DNS (or an http-01 redirect) points it, so
without this an account could make certctl probe the cloud metadata service or its own
loopback ports. Refused always: unspecified and "this network" (0/8), multicast, broadcast,
link-local (169.254/16 holds the metadata endpoints; fe80::/10), reserved and deprecated
site-local ranges, and the known metadata addresses outside those (AWS ``fd00:ec2::254``,
Alibaba ``100.100.100.200``). IPv4 written as IPv6 — mapped (``::ffff:a.b.c.d``) or behind
the NAT64 well-known prefix (``64:ff9b::/96``) — is judged as the IPv4 address it reaches.
Loopback is refused unless ``CERTCTL_ACME_SERVER_VALIDATION_ALLOW_LOOPBACK`` (tests, labs).

Private addresses (RFC 1918, ULA ``fc00::/7``, CGNAT ``100.64/10``) are allowed on purpose:
certctl is the CA of internal networks, whose hosts live there — a public CA would refuse
them. The cost is that an account may reach internal hosts on the validation ports, which
is why the validators never echo a response body back in their problem details.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "parse_resolver", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_METADATA = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


def _reached(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address stands for, else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why a validator must not connect to ``address`` (its class, e.g. "a loopback
    address"), or None when it may."""
    address = _reached(address)
    if address.is_unspecified or address in _THIS_NETWORK:
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address == _BROADCAST:
        return "a broadcast address"
    if address.is_reserved or (
        isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    ):
        return "a reserved address"
    return None


def parse_resolver(value: str) -> tuple[str, int] | None:
    """``host[:port]`` of a DNS server as (IP, port); None for "" (the system's resolver).

    IPv6 with a port is written ``[::1]:53`` (a bare ``::1`` means port 53). ValueError for
    anything but an IP literal: a resolver named by a host name would need a resolver to be
    found.
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
            port = _port(rest[1:])
        if not isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            raise ValueError(f"brackets are for IPv6 addresses: {value!r}")
    elif value.count(":") == 1:
        host, _, raw = value.partition(":")
        port = _port(raw)
    ipaddress.ip_address(host)  # raises ValueError for a name
    return host, port


def _port(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(f"not a port: {raw!r}")
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    return port
