"""Users who sign in through an identity provider (or break-glass); API keys are not users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class User(Base):
    """One person as one provider knows them: ``(provider_id, subject)`` is their identity.

    The same person signing in through two providers is two users on purpose: each provider
    vouches only for its own subjects, and their groups mean different things. ``groups`` holds
    the provider's group names as of the last login; grants to ``"<provider_id>:<group>"``
    apply to the user's sessions.
    """

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("provider_id", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    """An SSO provider id, or ``breakglass`` for local emergency accounts."""
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
