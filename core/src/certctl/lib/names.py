"""Validation and classification of subject alternative names, and SAN pattern matching."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from certctl.errors import BadRequest
from certctl_sdk.models import SubjectAltNames

__all__ = ["classify_sans", "name_matches", "validate_dns_name", "validate_san_pattern"]

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


def _kind(value: str, *, pattern: bool) -> str:
    try:
        if pattern:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return "ip"
    if "://" in value:
        return "uri"
    return "email" if "@" in value else "dns"


def validate_san_pattern(pattern: str) -> str:
    """Check a profile SAN pattern and return it normalised; BadRequest says what is wrong.

    DNS: ``example.com``, ``*.example.com`` (one label), ``**.example.com`` (any depth);
    IP: an address or CIDR; e-mail: ``user@example.com`` or ``*@example.com``;
    URI: exact, or a prefix ending in ``*`` (``spiffe://corp/ns/web/*``).
    """
    value = pattern.strip()
    if not value:
        raise BadRequest(f"invalid SAN pattern {pattern!r}: empty")
    kind = _kind(value, pattern=True)
    if kind == "ip":
        return str(ipaddress.ip_network(value, strict=False))
    if kind == "uri":
        if "*" in value[:-1] or not urlsplit(value.rstrip("*")).scheme:
            raise BadRequest(f"invalid SAN pattern {pattern!r}: URI only a trailing * is allowed")
        return value
    if kind == "email":
        local, _, domain = value.rpartition("@")
        if not local or "*" in domain or ("*" in local and local != "*"):
            raise BadRequest(f"invalid SAN pattern {pattern!r}: e-mail use user@domain or *@domain")
        return f"{local}@{_pattern_dns(pattern, domain)}"
    body = value.lower()
    for prefix in ("**.", "*."):
        if body.startswith(prefix):
            rest = body[len(prefix) :]
            if "*" in rest or "." not in rest:
                raise BadRequest(f"invalid SAN pattern {pattern!r}: DNS one leading wildcard label")
            return prefix + _pattern_dns(pattern, rest)
    if "*" in body:
        raise BadRequest(f"invalid SAN pattern {pattern!r}: DNS wildcards only as *. or **. prefix")
    return _pattern_dns(pattern, body)


def _pattern_dns(pattern: str, name: str) -> str:
    try:
        return validate_dns_name(name)
    except BadRequest as exc:
        raise BadRequest(f"invalid SAN pattern {pattern!r}: {exc.detail}") from None


def name_matches(name: str, pattern: str) -> bool:
    """Does a SAN match a profile pattern (see :func:`validate_san_pattern`)?

    A pattern only ever matches names of its own type, so a DNS pattern cannot admit a URI or
    e-mail name that merely ends in the same text. DNS names and e-mail domains compare
    case-insensitively; URIs compare exactly.
    """
    pattern = pattern.strip()
    kind = _kind(pattern, pattern=True)
    if _kind(name, pattern=False) != kind:
        return False
    if kind == "ip":
        return ipaddress.ip_address(name) in ipaddress.ip_network(pattern, strict=False)
    if kind == "uri":
        return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
    if kind == "email":
        local, _, domain = pattern.rpartition("@")
        name_local, _, name_domain = name.rpartition("@")
        if name_domain.lower() != domain.lower() or not name_local:
            return False
        return local == "*" or name_local == local
    name_l, pattern_l = name.lower(), pattern.lower()
    if pattern_l.startswith("**."):
        suffix = pattern_l[2:]
        return name_l.endswith(suffix) and len(name_l) > len(suffix)
    if pattern_l.startswith("*."):
        suffix = pattern_l[1:]
        head = name_l[: -len(suffix)] if name_l.endswith(suffix) else ""
        return bool(head) and "." not in head
    return name_l == pattern_l
