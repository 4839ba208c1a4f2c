"""Wire types of break-glass sign-in and its administration (never a password or hash)."""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["CredentialIn", "CredentialOut", "LoginIn", "LoginOut"]


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /auth/breakglass/login``."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"LoginIn(username={self.username!r})"


class LoginOut(msgspec.Struct, kw_only=True):
    """A started session; the session and CSRF tokens travel only in their cookies."""

    user_id: str
    username: str
    session_id: str
    expires_at: datetime


class CredentialIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a break-glass account, or set a new password for an existing one."""

    username: str
    password: str
    role_id: str | None = None
    """Granted at creation (default ``r-admin``); the caller must hold all of its permissions."""

    def __repr__(self) -> str:
        return f"CredentialIn(username={self.username!r}, role_id={self.role_id!r})"


class CredentialOut(msgspec.Struct, kw_only=True):
    """A break-glass account's metadata."""

    actor_id: str
    """The user id (``usr-…``) its sessions act as."""
    username: str
    role_id: str
    created_by: str
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None
    failed_attempts: int
    locked: bool
    locked_until: datetime | None
