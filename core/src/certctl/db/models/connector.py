"""Configured connector instances (issuers, targets, notifiers…) and their private state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class ConnectorInstance(Base):
    """One configured connector. ``config`` holds secrets only as encrypted blobs."""

    __tablename__ = "connectors"
    __table_args__ = (
        UniqueConstraint("family", "name"),
        Index("ix_connectors_family_kind", "family", "kind"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    test_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    test_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class ConnectorState(Base):
    """A connector's private key/value store (``ConnectorContext.state``), encrypted at rest."""

    __tablename__ = "connector_state"
    __table_args__ = (UniqueConstraint("connector_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
