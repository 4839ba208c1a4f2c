"""Wire types of the sessions API (never a token, a token hash or a CSRF value)."""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["RevokedOut", "SessionOut"]


class SessionOut(msgspec.Struct, kw_only=True):
    """One live browser session."""

    id: str
    user_id: str
    display_name: str
    provider_id: str
    auth_method: str
    created_at: datetime
    last_seen_at: datetime
    """Recorded at most once a minute, so up to a minute behind the latest request."""
    expires_at: datetime
    """The absolute end; the session ends earlier after ``idle_timeout_seconds`` idle."""
    idle_timeout_seconds: int
    client_ip: str
    user_agent: str
    current: bool
    """True for the session that made this request."""


class RevokedOut(msgspec.Struct, kw_only=True):
    """How many sessions a bulk revocation ended."""

    revoked: int
