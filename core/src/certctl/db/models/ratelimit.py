"""Token buckets of the request rate limit, shared by every replica on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base


class RateLimitBucket(Base):
    """One caller's bucket (``actor:…``, ``ip:…``, ``breakglass-login:…``).

    Written only by the single statement in :mod:`certctl.lib.ratelimit`, which refills
    ``tokens`` from ``updated_at`` and takes what it grants in one step. ``updated_at`` is the
    database's clock in seconds since the epoch, so replicas with skewed clocks agree. On
    PostgreSQL the table is UNLOGGED: losing it in a crash only refills every bucket. It has no
    index besides the key, so each update is a HOT update in place.
    """

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    granted: Mapped[int] = mapped_column(Integer)
    """Tokens the last statement handed out (0: it refused)."""
    updated_at: Mapped[float] = mapped_column(Double)
