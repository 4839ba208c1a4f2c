"""Validation and classification of subject alternative names, and SAN pattern matching."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from certctl.errors import BadRequest
from certctl_sdk.models import SubjectAltNames

__all__ = ["classify_sans", "name_matches", "validate_dns_name"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def validate_dns_name(name: str) -> str:
    """Return the lower-cased name or raise BadRequest; a wildcard only as the whole first label."""
    candidate = name.strip().lower().rstrip(".")
    if not candidate or len(candidate) > 253:
        raise BadRequest(f"invalid DNS name {name!r}: empty or longer than 253 characters")
    labels = candidate.split(".")
    for index, label in enumerate(labels):
        if label == "*" and index == 0 and len(labels) > 2:
            continue
        if not _LABEL.match(label):
            raise BadRequest(f"invalid DNS name {name!r}: bad label {label!r}")
    return candidate


def classify_sans(values: Iterable[str]) -> SubjectAltNames:
    """Sort free-form SAN strings into DNS, IP, e-mail and URI names, validating each."""
    dns: list[str] = []
    ips: list[str] = []
    emails: list[str] = []
    uris: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            raise BadRequest("empty subject alternative name")
        try:
            ips.append(str(ipaddress.ip_address(value)))
            continue
        except ValueError:
            pass
        if "://" in value:
            parts = urlsplit(value)
            if not parts.scheme or not (parts.netloc or parts.path):
                raise BadRequest(f"invalid URI name {value!r}")
            uris.append(value)
        elif "@" in value:
            if not _EMAIL.match(value):
                raise BadRequest(f"invalid e-mail name {value!r}")
            emails.append(value)
        else:
            dns.append(validate_dns_name(value))
    return SubjectAltNames(
        dns=tuple(dict.fromkeys(dns)),
        ip=tuple(dict.fromkeys(ips)),
        email=tuple(dict.fromkeys(emails)),
        uri=tuple(dict.fromkeys(uris)),
    )


def name_matches(name: str, pattern: str) -> bool:
    """Does a SAN match a profile pattern?

    Patterns: ``example.com`` (exact), ``*.example.com`` (exactly one label under it, including a
    literal wildcard name ``*.example.com``), ``**.example.com`` (any depth below it), a CIDR
    for IP names (``10.0.0.0/8``), ``*@example.com`` for e-mail, a ``prefix*`` for URIs.
    """
    name_l, pattern_l = name.lower(), pattern.lower().strip()
    try:
        network = ipaddress.ip_network(pattern_l, strict=False)
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(name_l) in network
        except ValueError:
            return False
    if "://" in pattern_l:
        return name_l.startswith(pattern_l[:-1]) if pattern_l.endswith("*") else name_l == pattern_l
    if pattern_l.startswith("*@"):
        return name_l.endswith(pattern_l[1:]) and name_l.count("@") == 1
    if pattern_l.startswith("**."):
        return name_l.endswith(pattern_l[2:]) and len(name_l) > len(pattern_l) - 2
    if pattern_l.startswith("*."):
        suffix = pattern_l[1:]
        head = name_l[: -len(suffix)] if name_l.endswith(suffix) else ""
        return bool(head) and "." not in head
    return name_l == pattern_l
