"""Wire types of the certificate profile API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from certctl.domain.approvals.schemas import ApprovalOut

__all__ = [
    "AcmeAuthMode",
    "KeyAlgorithmRule",
    "ProfileAccepted",
    "ProfileIn",
    "ProfileOut",
    "ProfileUpdate",
]


AcmeAuthMode = Literal["challenge", "trust_authenticated"]
"""``challenge``: every identifier is proven (http-01, dns-01, tls-alpn-01).
``trust_authenticated``: authorizations start valid for accounts bound by an operator's EAB key."""


class KeyAlgorithmRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An allowed key algorithm and its minimum size (Ed25519 counts as 256)."""

    algorithm: Literal["RSA", "ECDSA", "Ed25519"]
    min_size: Annotated[int, msgspec.Meta(ge=0, le=16384)] = 0


class ProfileIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a certificate profile."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    description: str = ""
    allowed_key_algorithms: list[KeyAlgorithmRule] = msgspec.field(
        default_factory=lambda: [
            KeyAlgorithmRule(algorithm="ECDSA", min_size=256),
            KeyAlgorithmRule(algorithm="RSA", min_size=2048),
        ]
    )
    max_ttl_seconds: Annotated[int, msgspec.Meta(ge=0)] = 0
    allowed_san_patterns: list[str] = msgspec.field(default_factory=list)
    allowed_ekus: list[str] = msgspec.field(default_factory=lambda: ["serverAuth"])
    must_staple: bool = False
    renew_before_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    renewal_policy_id: str | None = None
    enabled: bool = True
    required_san_patterns: list[str] = msgspec.field(default_factory=list)
    """Each pattern must be matched by at least one name of every request."""
    requires_approval: bool = False
    """Issuance, renewal and edits of this profile need a second person's approval."""
    issuer_id: str | None = None
    """The issuer that signs for protocol clients (ACME) enrolling under this profile."""
    acme_auth_mode: AcmeAuthMode | None = None
    """None follows CERTCTL_ACME_SERVER_DEFAULT_AUTH_MODE."""
    acme_eab_required: bool | None = None
    """None follows CERTCTL_ACME_SERVER_EAB_REQUIRED; ``trust_authenticated`` always needs EAB."""


class ProfileUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change a profile; omitted fields keep their values."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    description: str | None = None
    allowed_key_algorithms: list[KeyAlgorithmRule] | None = None
    max_ttl_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    allowed_san_patterns: list[str] | None = None
    allowed_ekus: list[str] | None = None
    must_staple: bool | None = None
    renew_before_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    renewal_policy_id: str | None = None
    """A renewal policy id; ``""`` detaches the profile from its policy."""
    enabled: bool | None = None
    required_san_patterns: list[str] | None = None
    requires_approval: bool | None = None
    issuer_id: str | None = None
    """An issuer id; ``""`` detaches the profile from its issuer."""
    acme_auth_mode: AcmeAuthMode | None = None
    acme_eab_required: bool | None = None


class ProfileOut(msgspec.Struct, kw_only=True):
    """A certificate profile."""

    id: str
    name: str
    description: str
    allowed_key_algorithms: list[KeyAlgorithmRule]
    max_ttl_seconds: int
    allowed_san_patterns: list[str]
    allowed_ekus: list[str]
    must_staple: bool
    renew_before_days: int | None
    renewal_policy_id: str | None
    enabled: bool
    required_san_patterns: list[str]
    requires_approval: bool
    issuer_id: str | None
    acme_auth_mode: AcmeAuthMode | None
    acme_eab_required: bool | None
    created_at: datetime
    updated_at: datetime


class ProfileAccepted(msgspec.Struct, kw_only=True):
    """An edit or deletion of an approval-tier profile, waiting for a second person (202)."""

    approval: ApprovalOut
