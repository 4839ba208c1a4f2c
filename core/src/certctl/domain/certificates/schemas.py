"""Wire types of the certificate, version, deployment and job APIs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from certctl_sdk.models import KeyType

__all__ = [
    "CertificateAccepted",
    "CertificateBulkCreate",
    "CertificateCreate",
    "CertificateOut",
    "CertificateUpdate",
    "DeployIn",
    "DeploymentOut",
    "JobOut",
    "PemExport",
    "VersionOut",
]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class CertificateCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Request a managed certificate; issuance runs as a job."""

    common_name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    issuer_id: str
    name: Name | None = None
    sans: list[str] = msgspec.field(default_factory=list)
    key_type: KeyType = KeyType.ECDSA_P256
    profile_id: str | None = None
    target_ids: list[str] = msgspec.field(default_factory=list)
    ekus: list[str] | None = None
    validity_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    renew_before_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    renewal_policy_id: str | None = None
    environment: Annotated[str, msgspec.Meta(max_length=64)] = ""
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class CertificateBulkCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Up to 500 certificates at once (fleet onboarding); all are accepted or none."""

    certificates: Annotated[list[CertificateCreate], msgspec.Meta(min_length=1, max_length=500)]


class CertificateUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change what can change without reissuing."""

    name: Name | None = None
    target_ids: list[str] | None = None
    renew_before_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    renewal_policy_id: str | None = None
    """A renewal policy id; ``""`` detaches the certificate from its policy."""
    environment: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    tags: dict[str, str] | None = None


class CertificateOut(msgspec.Struct, kw_only=True):
    """A managed certificate."""

    id: str
    name: str
    common_name: str
    sans: list[str]
    key_type: str
    ekus: list[str]
    issuer_id: str
    profile_id: str | None
    renewal_policy_id: str | None
    target_ids: list[str]
    status: str
    serial_number: str | None
    fingerprint_sha256: str | None
    expires_at: datetime | None
    renew_at: datetime | None
    last_renewal_at: datetime | None
    last_deployment_at: datetime | None
    last_error: str | None
    environment: str
    tags: dict[str, str]
    source: str
    key_location: str
    """``server`` (certctl holds the key and renews) or ``client`` (ACME, agent CSRs)."""
    replace_by: datetime | None
    """A scheduled replacement's deadline (``POST /api/v1/certificates/replacements``)."""
    created_at: datetime
    updated_at: datetime


class JobOut(msgspec.Struct, kw_only=True):
    """A job and where it stands."""

    id: str
    type: str
    status: str
    certificate_id: str | None
    target_id: str | None
    version_id: str | None
    attempts: int
    max_attempts: int
    last_error: str | None
    next_run_at: datetime
    requested_by: str
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class CertificateAccepted(msgspec.Struct, kw_only=True):
    """A certificate and the job that will (re)issue it."""

    certificate: CertificateOut
    job: JobOut


class DeployIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which targets to deploy to; all mapped targets when omitted."""

    target_ids: list[str] | None = None


class VersionOut(msgspec.Struct, kw_only=True):
    """One issued version of a certificate (never its private key)."""

    id: str
    version: int
    serial_number: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    key_type: str
    certificate_pem: str
    chain_pem: str
    created_at: datetime


class DeploymentOut(msgspec.Struct, kw_only=True):
    """The outcome of one deployment."""

    id: str
    target_id: str
    version_id: str
    job_id: str | None
    status: str
    changed: bool
    message: str
    verified_serial: str | None
    created_at: datetime


class PemExport(msgspec.Struct, kw_only=True):
    """Certificate and chain as PEM."""

    certificate_pem: str
    chain_pem: str
    full_chain_pem: str
