"""The append-only, hash-chained audit trail (database triggers refuse UPDATE and DELETE).

Each row carries its position in the chain (``seq``, gapless from 1), the ``row_hash`` of the
row before it (``prev_hash``) and its own ``row_hash`` over a canonical encoding of every
column (``certctl.domain.audit.canonical``). ``audit_chain_head`` is a single row holding the
last position and hash; writers lock it just before committing, so appends are serialised and
a removed tail shows as a head that points past the last row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who did what to which resource, when, and how it ended."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_timestamp", "timestamp"),
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
        Index("ix_audit_events_actor", "actor"),
        Index("ix_audit_events_seq", "seq", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(24))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    seq: Mapped[int] = mapped_column(BigInteger)
    """Position in the hash chain: 1, 2, 3… in commit order (not always timestamp order)."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    """``row_hash`` of the row at ``seq - 1`` (64 zeros for the first row)."""
    row_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 (hex) of the canonical encoding of this row, ``seq`` and ``prev_hash``."""


class AuditChainHead(Base):
    """The one row naming the chain's last position and hash (``id`` is always 1)."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
