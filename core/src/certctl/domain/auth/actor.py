"""Who is making a request, and what they may do.

An actor carries the permissions resolved from its role grants when it was authenticated, so
checking a permission is a set lookup. Scoped grants (a role held only for one profile or
issuer) are kept apart: they satisfy a check only for that scope.
"""

from __future__ import annotations

import msgspec

from certctl.domain.auth.permissions import ALL_PERMISSIONS

__all__ = ["SYSTEM", "Actor"]


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller (or the system itself, for scheduled work)."""

    name: str
    """The actor id: an API key's name, a user's id (``usr-…``) or a system name."""
    type: str
    """``APIKey``, ``User``, ``System`` or ``Anonymous`` (demo mode, refused callers)."""
    permissions: frozenset[str] = frozenset()
    """Permissions held globally."""
    scoped: frozenset[tuple[str, str, str]] = frozenset()
    """``(permission, scope_type, scope_id)`` held only for one scope."""
    roles: tuple[str, ...] = ()
    """Role ids the permissions came from (for display and audit)."""
    session_id: str | None = None
    """Set when the caller was authenticated by a session cookie (CSRF applies)."""
    display_name: str = ""

    def can(self, permission: str, scope_type: str | None = None, scope_id: str = "") -> bool:
        """Does this actor hold ``permission`` (globally, or for the given scope)?

        A global grant satisfies every scoped check; a scoped grant satisfies only a check for
        the same scope type and id.
        """
        if permission in self.permissions:
            return True
        return scope_type is not None and (permission, scope_type, scope_id) in self.scoped

    @classmethod
    def system(cls, name: str) -> Actor:
        """An internal actor holding every permission (scheduled work, bootstrap, seeding)."""
        return cls(name=name, type="System", permissions=ALL_PERMISSIONS, roles=("r-admin",))

    @classmethod
    def anonymous(cls, name: str) -> Actor:
        """A caller that proved nothing (refused requests, failed logins): no permissions."""
        return cls(name=name, type="Anonymous")


SYSTEM = Actor.system("system")
"""The actor recorded for scheduled work (renewals, retries)."""
