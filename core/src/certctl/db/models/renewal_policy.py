"""Renewal policies: when certificates renew and who hears about their expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class RenewalPolicy(Base):
    """Renewal timing, jitter and expiry-alert routing shared by certificates and profiles."""

    __tablename__ = "renewal_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    renewal_window_days: Mapped[int] = mapped_column(Integer, default=30)
    renew_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_percent: Mapped[int] = mapped_column(Integer, default=10)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    max_retries: Mapped[int] = mapped_column(Integer, default=3)
    retry_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    alert_thresholds_days: Mapped[list[int]] = mapped_column(JSON)
    alert_severity_map: Mapped[dict[str, str]] = mapped_column(JSON)
    alert_notifier_ids: Mapped[list[str]] = mapped_column(JSON)
    notify_events: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
