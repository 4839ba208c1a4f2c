"""The CA hierarchy of an issuer: intermediates and issuing CAs below the issuer's own CA."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class IntermediateCa(Base):
    """A CA certificate of the tree and its key (sealed, or a reference to a token's key).

    ``parent_id`` is None for a child of the issuer's own CA (the root). At most one row per
    issuer has ``issuing`` set: the CA that signs the issuer's leaves, CRLs and OCSP responders.
    ``state`` is ``active``, ``retiring`` (signs CRLs and OCSP but nothing new) or ``retired``.
    """

    __tablename__ = "intermediate_cas"
    __table_args__ = (
        Index("ix_intermediate_cas_issuer_id", "issuer_id"),
        Index("ix_intermediate_cas_parent_id", "parent_id"),
        Index(
            "uq_intermediate_cas_issuing",
            "issuer_id",
            unique=True,
            sqlite_where=text("issuing"),
            postgresql_where=text("issuing"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("intermediate_cas.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="active")
    issuing: Mapped[bool] = mapped_column(Boolean, default=False)
    algorithm: Mapped[str] = mapped_column(String(16))
    certificate_pem: Mapped[str] = mapped_column(Text)
    key_store: Mapped[str] = mapped_column(String(16), default="file")
    """Where the key lives: ``file`` (``private_key_enc``, sealed) or ``pkcs11`` (``key_ref``)."""
    private_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_ref: Mapped[str | None] = mapped_column(String(512), nullable=True)
    """The reference's ``key_driver_id``: the key's RFC 7512 URI; the key stays in the token."""
    serial_number: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    path_len_constraint: Mapped[int | None] = mapped_column(Integer, nullable=True)
    permitted_dns: Mapped[list[str]] = mapped_column(JSON, default=list)
    excluded_dns: Mapped[list[str]] = mapped_column(JSON, default=list)
    ocsp_responder_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    retire_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
