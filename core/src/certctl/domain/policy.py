"""The one policy check every issuance path goes through (API, renewal, later ACME/EST/SCEP).

SAN patterns come in two lists with different quantifiers:

- ``allowed_san_patterns``: *every* name of the request must match *some* pattern (a fence);
- ``required_san_patterns``: *every* pattern must be matched by *some* name of the request
  (a must-have, e.g. ``*.corp.example`` so each certificate names a host in the corporate zone,
  or ``spiffe://corp/*`` so each workload certificate carries its SPIFFE ID).

Both use the typed matching of :func:`certctl.lib.names.name_matches`: a DNS pattern is never
satisfied by a URI or e-mail name. The Go certctl stores required patterns without checking
them; here they are enforced at request time and again just before signing.
"""

from __future__ import annotations

from certctl.db.models import CertificateProfile
from certctl.errors import PolicyViolation
from certctl.lib.names import name_matches
from certctl_sdk.models import KeyType, SubjectAltNames

__all__ = [
    "KEY_ALGORITHMS",
    "IssuancePolicyInput",
    "check_issuance",
    "key_algorithm_of",
    "name_problems",
]

KEY_ALGORITHMS: dict[KeyType, tuple[str, int]] = {
    KeyType.ECDSA_P256: ("ECDSA", 256),
    KeyType.ECDSA_P384: ("ECDSA", 384),
    KeyType.RSA_2048: ("RSA", 2048),
    KeyType.RSA_3072: ("RSA", 3072),
    KeyType.RSA_4096: ("RSA", 4096),
    KeyType.ED25519: ("Ed25519", 256),
}
"""Each key type as the profile's ``{algorithm, min_size}`` vocabulary sees it."""


def key_algorithm_of(key_type: KeyType) -> tuple[str, int]:
    """(algorithm, size) for a key type."""
    return KEY_ALGORITHMS[key_type]


class IssuancePolicyInput:
    """What is about to be signed, in the terms the profile constrains."""

    __slots__ = ("ekus", "key_type", "sans", "validity_seconds")

    def __init__(
        self,
        *,
        key_type: KeyType,
        sans: SubjectAltNames,
        validity_seconds: int,
        ekus: tuple[str, ...],
    ) -> None:
        self.key_type = key_type
        self.sans = sans
        self.validity_seconds = validity_seconds
        self.ekus = ekus


def name_problems(profile: CertificateProfile, sans: SubjectAltNames) -> list[str]:
    """What the profile's SAN patterns say about a set of names (empty: allowed).

    Also asked on its own before any key exists, e.g. when an ACME order names identifiers.
    """
    problems: list[str] = []
    names = sans.all()
    if profile.allowed_san_patterns:
        for name in names:
            if not any(name_matches(name, p) for p in profile.allowed_san_patterns):
                problems.append(f"name {name!r} matches none of the profile's SAN patterns")
    for pattern in profile.required_san_patterns or ():
        if not any(name_matches(name, pattern) for name in names):
            problems.append(f"no name matches the profile's required SAN pattern {pattern!r}")
    return problems


def check_issuance(profile: CertificateProfile | None, request: IssuancePolicyInput) -> None:
    """Raise PolicyViolation listing every rule the request breaks; no profile means no limits."""
    if profile is None:
        return
    problems: list[str] = []
    if not profile.enabled:
        problems.append(f"profile {profile.name!r} is disabled")
    algorithm, size = key_algorithm_of(request.key_type)
    rules = profile.allowed_key_algorithms
    if rules and not any(
        r.get("algorithm") == algorithm and size >= int(r.get("min_size", 0)) for r in rules
    ):
        allowed = ", ".join(f"{r.get('algorithm')}>={r.get('min_size', 0)}" for r in rules)
        problems.append(f"key type {request.key_type} is not allowed (allowed: {allowed})")
    if profile.max_ttl_seconds and request.validity_seconds > profile.max_ttl_seconds:
        problems.append(
            f"validity {request.validity_seconds}s exceeds the profile maximum "
            f"{profile.max_ttl_seconds}s"
        )
    problems += name_problems(profile, request.sans)
    if profile.allowed_ekus:
        extra = sorted(set(request.ekus) - set(profile.allowed_ekus))
        if extra:
            problems.append(f"extended key usages {extra} are not allowed by the profile")
    if problems:
        raise PolicyViolation("; ".join(problems), violations=problems)
