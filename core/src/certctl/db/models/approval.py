"""Two-person approval requests gating issuance, renewal and edits of approval-tier profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class ApprovalRequest(Base):
    """One request for a second person's decision.

    ``job_id`` is unique: a gated job has exactly one request, so concurrent enqueues of one
    job cannot open two. Profile edits have no job; their proposed change is in ``payload``.
    """

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_state_created_at", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    certificate_id: Mapped[str | None] = mapped_column(
        String(40),
        ForeignKey("managed_certificates.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    )
    job_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    profile_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
