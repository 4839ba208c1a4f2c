"""Single sign-on state: logins in flight (pre-login rows) and used logout-token ids.

SSO providers themselves are connector instances of family ``auth`` (their client secrets are
encrypted like every connector secret), and group mappings are role grants to
``("Group", "<provider_id>:<group>")``; neither needs a table of its own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class OidcPendingLogin(Base):
    """A login between ``/auth/oidc/login`` and its callback; consumed exactly once.

    Only hashes of the state and of the browser-binding cookie are kept; the PKCE verifier and
    nonce, which must be recovered, are one encrypted blob bound to the row.
    """

    __tablename__ = "oidc_pending_logins"
    __table_args__ = (Index("ix_oidc_pending_logins_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    binding_hash: Mapped[str] = mapped_column(String(64))
    provider_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE")
    )
    secrets_enc: Mapped[str] = mapped_column(Text)
    """``{"verifier", "nonce"}`` as JSON, encrypted with context ``oidc-pending:<id>``."""
    redirect_after: Mapped[str] = mapped_column(String(2048), default="/")
    user_agent_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OidcLogoutJti(Base):
    """A back-channel logout token's ``jti``, kept until the token could no longer be fresh."""

    __tablename__ = "oidc_logout_jtis"
    __table_args__ = (Index("ix_oidc_logout_jtis_expires_at", "expires_at"),)

    provider_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
