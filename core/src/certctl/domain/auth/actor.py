"""Who is making a request."""

from __future__ import annotations

import msgspec

from certctl.domain.auth.permissions import permissions_for

__all__ = ["SYSTEM", "Actor"]


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller (or the system itself, for scheduled work)."""

    name: str
    type: str
    """``APIKey``, ``System`` or ``Anonymous`` (demo)."""
    role: str

    def can(self, permission: str) -> bool:
        """Does this actor hold ``permission``?"""
        return permission in permissions_for(self.role)


SYSTEM = Actor(name="system", type="System", role="admin")
"""The actor recorded for scheduled work (renewals, retries)."""
