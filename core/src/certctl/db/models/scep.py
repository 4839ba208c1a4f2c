"""SCEP server state: enrolment transactions and one-time / Intune challenges.

A transaction ties a client's ``transactionID`` to the issuance job it started, so a resent
request (or a CertPoll) after a PENDING answer gets the certificate once the job has issued it.
Challenges are stored only as SHA-256 digests: a one-time password issued through the API, or
an Intune challenge already consumed (replay protection shared by every replica).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class ScepTransaction(Base):
    """One PKCSReq/RenewalReq: the job that answers it."""

    __tablename__ = "scep_transactions"
    __table_args__ = (
        # One transaction per request: a resend racing its original cannot start a second job.
        UniqueConstraint("scep_profile", "transaction_id", "request_digest"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scep_profile: Mapped[str] = mapped_column(String(64))
    """The SCEP path id (``""`` for the legacy ``/scep``)."""
    transaction_id: Mapped[str] = mapped_column(String(128))
    message_type: Mapped[str] = mapped_column(String(4))
    request_digest: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the CSR and, for a renewal, the signer certificate: what makes a resend."""
    requester_key: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the CSR's public key: a CertPoll must come from the same key."""
    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id", ondelete="CASCADE")
    )
    job_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScepChallenge(Base):
    """A one-time challenge password (``kind = otp``) or a consumed Intune challenge."""

    __tablename__ = "scep_challenges"
    __table_args__ = (Index("ix_scep_challenges_device", "scep_profile", "device", "used_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scep_profile: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    device: Mapped[str] = mapped_column(String(255), default="")
    """Intune: the device the challenge was issued for (per-device limit). OTP: a label."""
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by: Mapped[str] = mapped_column(String(128), default="")
    """The transactionID that consumed it."""
