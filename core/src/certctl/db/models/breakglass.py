"""Local emergency sign-in: one Argon2id password per break-glass user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class BreakglassCredential(Base):
    """The password of a ``users`` row whose provider is ``breakglass``.

    ``password_hash`` is an Argon2id PHC string (parameters and salt included); the password
    itself is never stored. ``failed_attempts`` counts failures since ``window_started_at``
    and is only ever changed by single UPDATE statements (see ``domain/breakglass/service``).
    """

    __tablename__ = "breakglass_credentials"

    actor_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    """The user id (``usr-…``) the credential signs in as."""
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """The first failure still counted; the count restarts a reset interval after it."""
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    role_id: Mapped[str] = mapped_column(String(40))
    """The role granted to the user when the credential was created."""
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
