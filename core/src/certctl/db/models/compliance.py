"""Compliance policy rules and the violations they currently report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class PolicyRule(Base):
    """A compliance rule: its ``type`` decides the shape of ``config`` (validated on write)."""

    __tablename__ = "policy_rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ComplianceViolation(Base):
    """A rule a certificate breaks now: one row per (rule, certificate), deleted when resolved."""

    __tablename__ = "policy_violations"
    __table_args__ = (UniqueConstraint("rule_id", "certificate_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("policy_rules.id", ondelete="CASCADE")
    )
    certificate_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("managed_certificates.id", ondelete="CASCADE"), index=True
    )
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
