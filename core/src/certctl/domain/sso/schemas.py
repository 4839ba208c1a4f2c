"""Wire types of the SSO endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "GroupMappingIn",
    "GroupMappingOut",
    "JwksKeyOut",
    "JwksStatusOut",
    "LoginOption",
    "ProviderOut",
]


class LoginOption(msgspec.Struct, kw_only=True):
    """An enabled provider as the login page shows it."""

    id: str
    name: str
    type: str
    login_url: str


class ProviderOut(msgspec.Struct, kw_only=True):
    """An SSO provider; the client secret is masked."""

    id: str
    name: str
    type: str
    config: dict[str, Any]
    enabled: bool
    login_url: str
    created_at: datetime
    updated_at: datetime


class JwksKeyOut(msgspec.Struct, kw_only=True):
    """A cached signing key (public facts)."""

    kid: str | None
    kty: str
    alg: str | None
    crv: str | None


class JwksStatusOut(msgspec.Struct, kw_only=True):
    """This process's key cache of one provider."""

    provider_id: str
    issuer: str
    keys: list[JwksKeyOut]
    fetched_at: datetime | None
    expires_at: datetime | None
    refresh_count: int
    last_error: str | None
    last_error_at: datetime | None
    advertised_algs: list[str]


Group = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class GroupMappingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Members of ``group`` at ``provider_id`` hold ``role_id`` (globally, or for one scope)."""

    provider_id: str
    group: Group
    role_id: str
    scope_type: str = "global"
    scope_id: str = ""


class GroupMappingOut(msgspec.Struct, kw_only=True):
    """A group mapping: a role grant to ``("Group", "<provider_id>:<group>")``."""

    id: str
    provider_id: str
    group: str
    role_id: str
    scope_type: str
    scope_id: str
    granted_by: str
    granted_at: datetime
