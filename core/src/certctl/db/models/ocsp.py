"""The delegated OCSP responder the core keeps per issuer (RFC 6960 §4.2.2.2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class OcspResponder(Base):
    """An issuer's current responder certificate and its key (encrypted at rest).

    The key is sealed with the context ``ocsp-responder:<issuer_id>``; a rotation replaces the
    row in place.
    """

    __tablename__ = "ocsp_responders"

    issuer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    certificate_pem: Mapped[str] = mapped_column(Text)
    private_key_enc: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
