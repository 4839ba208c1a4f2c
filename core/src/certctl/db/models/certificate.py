"""Profiles, managed certificates, their versions, target mappings and deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class CertificateProfile(Base):
    """Issuance policy: key algorithms, lifetime, SAN patterns, EKUs, must-staple, approval."""

    __tablename__ = "certificate_profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    allowed_key_algorithms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    max_ttl_seconds: Mapped[int] = mapped_column(Integer, default=0)
    allowed_san_patterns: Mapped[list[str]] = mapped_column(JSON)
    allowed_ekus: Mapped[list[str]] = mapped_column(JSON)
    must_staple: Mapped[bool] = mapped_column(Boolean, default=False)
    renew_before_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    renewal_policy_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("renewal_policies.id"), nullable=True, index=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    required_san_patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    issuer_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("connectors.id"), nullable=True, index=True
    )
    """The issuer that signs for the profile's protocol clients (ACME, later EST and SCEP)."""
    acme_auth_mode: Mapped[str | None] = mapped_column(String(24), nullable=True)
    """``challenge`` or ``trust_authenticated``; None: CERTCTL_ACME_SERVER_DEFAULT_AUTH_MODE."""
    acme_eab_required: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """None follows CERTCTL_ACME_SERVER_EAB_REQUIRED (trust_authenticated always requires it)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ManagedCertificate(Base):
    """A certificate certctl keeps alive: what to request, from whom, and where it goes."""

    __tablename__ = "managed_certificates"
    __table_args__ = (
        Index("ix_managed_certificates_status_renew_at", "status", "renew_at"),
        Index("ix_managed_certificates_expires_at", "expires_at"),
        Index("ix_managed_certificates_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    common_name: Mapped[str] = mapped_column(String(255))
    sans: Mapped[list[str]] = mapped_column(JSON)
    key_type: Mapped[str] = mapped_column(String(16))
    ekus: Mapped[list[str]] = mapped_column(JSON)
    validity_seconds: Mapped[int] = mapped_column(Integer)
    renew_before_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issuer_id: Mapped[str] = mapped_column(String(40), ForeignKey("connectors.id"), index=True)
    profile_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("certificate_profiles.id"), nullable=True, index=True
    )
    renewal_policy_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("renewal_policies.id"), nullable=True, index=True
    )
    environment: Mapped[str] = mapped_column(String(64), default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(24), default="pending")
    serial_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    renew_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    current_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_renewal_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_deployment_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="api")
    key_location: Mapped[str] = mapped_column(String(8), default="server")
    """``server`` (certctl generates and stores the key, and renews) or ``client`` (the key
    never reaches certctl: ACME and agent CSRs; the client renews, so ``renew_at`` stays None)."""
    replace_by: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """An operator-scheduled replacement deadline; ARI answers a window ending here."""
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CertificateVersion(Base):
    """One issuance of a managed certificate; the private key is stored encrypted."""

    __tablename__ = "certificate_versions"
    __table_args__ = (UniqueConstraint("certificate_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    serial_number: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    certificate_pem: Mapped[str] = mapped_column(Text)
    chain_pem: Mapped[str] = mapped_column(Text)
    csr_pem: Mapped[str] = mapped_column(Text)
    key_type: Mapped[str] = mapped_column(String(16))
    private_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CertificateTarget(Base):
    """Which targets a certificate is deployed to."""

    __tablename__ = "certificate_targets"

    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )


class Deployment(Base):
    """The outcome of deploying one certificate version to one target."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[str] = mapped_column(String(40), index=True)
    version_id: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    changed: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")
    verified_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
