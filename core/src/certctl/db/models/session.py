"""Browser sessions and the keys that sign their cookies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class BrowserSession(Base):
    """A signed-in browser.

    The cookie carries a 256-bit random token; only its SHA-256 is stored (``token_hash``), so
    neither a database dump nor the public ``id`` shown in lists and audit rows can be turned
    back into a working cookie. The CSRF token is stored the same way.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_idp_sid", "idp_sid"),
        Index("ix_sessions_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(40), ForeignKey("users.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(32))
    """``sso`` or ``breakglass`` (whoever called ``start_session`` says)."""
    idp_sid: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """The identity provider's session id (``sid``), for back-channel logout."""
    group_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Group actor ids (``"<provider_id>:<group>"``) the session's grants come from."""
    csrf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    """Written at most once a minute per session, so idle tracking costs no write per request."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """The absolute end: ``created_at`` + ``CERTCTL_SESSION_ABSOLUTE_TIMEOUT``."""
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)


class SessionSigningKey(Base):
    """An HMAC key for session cookies, encrypted with the configuration key.

    ``active_slot`` is 1 for the one key that signs new cookies and NULL for retired keys,
    which still verify for ``CERTCTL_SESSION_SIGNING_KEY_RETENTION``. A unique constraint on
    it (NULLs are distinct in SQLite and PostgreSQL alike) lets the database decide which of
    two replicas creating or rotating a key at once wins.
    """

    __tablename__ = "session_signing_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_enc: Mapped[str] = mapped_column(Text)
    active_slot: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
