"""Wire types of the identity and RBAC API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

__all__ = [
    "BootstrapIn",
    "BootstrapStatus",
    "GrantIn",
    "GrantOut",
    "KeyIn",
    "KeyOut",
    "KeyRoleIn",
    "PermissionOut",
    "PermissionsIn",
    "RoleIn",
    "RoleOut",
    "RoleUpdate",
    "WhoAmI",
]

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{3,64}$")]


class BootstrapStatus(msgspec.Struct, kw_only=True):
    """Whether the bootstrap endpoint can still mint the first admin key."""

    available: bool


class BootstrapIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The bootstrap token and the name of the admin key to mint."""

    token: str
    name: str = "admin"


class KeyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new database API key and the roles its name is granted."""

    name: Name
    roles: list[str] = msgspec.field(default_factory=lambda: ["r-viewer"])
    expires_at: datetime | None = None


class KeyOut(msgspec.Struct, kw_only=True):
    """An API key; ``key`` is present only in the response that created it."""

    id: str
    name: str
    source: str
    """``database`` or ``environment`` (environment keys are listed by name only)."""
    roles: list[str]
    created_by: str
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    key: str | None = None


class KeyRoleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A role granted to a key's name, optionally for one scope."""

    role_id: str
    scope_type: str = "global"
    scope_id: str = ""
    expires_at: datetime | None = None


class GrantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A role granted to any actor (API key name, user id, or ``<provider>:<group>``)."""

    actor_type: str
    actor_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    role_id: str
    scope_type: str = "global"
    scope_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    expires_at: datetime | None = None


class GrantOut(msgspec.Struct, kw_only=True):
    """One role grant."""

    id: str
    actor_type: str
    actor_id: str
    role_id: str
    scope_type: str
    scope_id: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None


class RoleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A custom role."""

    name: Name
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    permissions: list[str] = msgspec.field(default_factory=list)


class RoleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields of a custom role to change; ``permissions`` replaces the whole set."""

    name: Name | None = None
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    permissions: list[str] | None = None


class PermissionsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Permissions to add to a custom role."""

    permissions: Annotated[list[str], msgspec.Meta(min_length=1)]


class RoleOut(msgspec.Struct, kw_only=True):
    """A role and its permissions."""

    id: str
    name: str
    description: str
    builtin: bool
    permissions: list[str]
    created_at: datetime
    updated_at: datetime


class PermissionOut(msgspec.Struct, kw_only=True):
    """One catalogue entry."""

    name: str
    namespace: str


class WhoAmI(msgspec.Struct, kw_only=True):
    """The authenticated caller and what they may do."""

    name: str
    type: str
    display_name: str
    roles: list[str]
    permissions: list[str]
    scoped_permissions: list[list[str]]
    """``[permission, scope_type, scope_id]`` held only for one scope."""
    session_id: str | None
