"""Revocation state the core owns: revoked serials per issuer and each issuer's current CRL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class CertificateRevocation(Base):
    """One revoked certificate version; every row of an issuer is listed on its CRL.

    Rows are never deleted (a complete CRL keeps expired entries too), and a serial is revoked
    at most once per issuer.
    """

    __tablename__ = "certificate_revocations"
    __table_args__ = (UniqueConstraint("issuer_id", "serial_number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id"), index=True
    )
    version_id: Mapped[str] = mapped_column(String(40))
    issuer_id: Mapped[str] = mapped_column(String(40), ForeignKey("connectors.id"))
    serial_number: Mapped[str] = mapped_column(String(64))
    reason: Mapped[int] = mapped_column(Integer)
    """RFC 5280 §5.3.1 CRLReason code."""
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_by: Mapped[str] = mapped_column(String(128))
    issuer_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    issuer_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CrlState(Base):
    """The latest CRL signed for an issuer and the number it carries (monotonic per issuer)."""

    __tablename__ = "crl_state"

    issuer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    crl_number: Mapped[int] = mapped_column(Integer)
    crl_der: Mapped[bytes] = mapped_column(LargeBinary)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    etag: Mapped[str] = mapped_column(String(80))
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
