"""Wire types of the revocation API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from certctl_sdk.models import RevocationReason

__all__ = [
    "REASONS",
    "BulkRevokeIn",
    "ReasonName",
    "RevocationOut",
    "RevokeIn",
    "RevokedVersionOut",
]

ReasonName = Literal[
    "unspecified",
    "keyCompromise",
    "caCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
]
"""RFC 5280 §5.3.1 reason names a request may use; ``removeFromCRL`` belongs to delta CRLs."""

REASONS: dict[str, RevocationReason] = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "keyCompromise": RevocationReason.KEY_COMPROMISE,
    "caCompromise": RevocationReason.CA_COMPROMISE,
    "affiliationChanged": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessationOfOperation": RevocationReason.CESSATION_OF_OPERATION,
    "certificateHold": RevocationReason.CERTIFICATE_HOLD,
    "privilegeWithdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
    "aACompromise": RevocationReason.AA_COMPROMISE,
}

REASON_NAMES: dict[int, str] = {int(code): name for name, code in REASONS.items()}

Versions = Literal["current", "all"]


class RevokeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Revoke a certificate's current version, or every version ever issued."""

    reason: ReasonName
    versions: Versions = "current"
    withdraw_from_targets: bool = False
    """Also remove the certificate from the targets it is deployed to (targets that can)."""


class BulkRevokeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Revoke up to 500 certificates at once; all are revoked or none is."""

    certificate_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=500)]
    reason: ReasonName
    versions: Versions = "current"
    withdraw_from_targets: bool = False
    """Also remove each certificate from the targets it is deployed to (targets that can)."""


class RevokedVersionOut(msgspec.Struct, kw_only=True):
    """One revoked serial and whether the issuer was told."""

    version_id: str
    serial_number: str
    reason: str
    revoked_at: datetime
    issuer_notified: bool
    issuer_error: str | None


class RevocationOut(msgspec.Struct, kw_only=True):
    """The outcome of revoking one certificate."""

    certificate_id: str
    status: str
    revoked: list[RevokedVersionOut]
    cancelled_jobs: list[str]
    crl_number: int | None
    """The number of the issuer's CRL signed after this revocation (None: no CRL, or it failed)."""
