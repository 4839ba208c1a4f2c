"""The first admin by IdP group: ``CERTCTL_BOOTSTRAP_ADMIN_GROUPS``.

While no admin exists, the first user signing in with one of those groups (from
``CERTCTL_BOOTSTRAP_OIDC_PROVIDER_ID`` when set) is granted ``r-admin``. "First" is decided by
the ``bootstrap_consumed`` system flag, which the token bootstrap inserts too: this path inserts
it with ``ON CONFLICT DO NOTHING`` in the login's transaction, so of any number of racing SSO
logins and token bootstraps, on any number of replicas, exactly one wins, once ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import SystemFlag
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.controller import BOOTSTRAP_FLAG
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.seeding import grant_once
from certctl.domain.auth.service import admin_exists

if TYPE_CHECKING:
    from certctl.settings import Settings

__all__ = ["bootstrap_admin_by_group"]


async def bootstrap_admin_by_group(
    db: AsyncSession,
    settings: Settings,
    *,
    user_id: str,
    provider_id: str,
    provider_name: str,
    groups: tuple[str, ...],
) -> bool:
    """Grant ``r-admin`` to this user if the bootstrap applies and nobody won it; True if so."""
    wanted = set(settings.bootstrap_admin_groups)
    matched = sorted(wanted & set(groups))
    if not matched:
        return False
    if settings.bootstrap_oidc_provider_id not in ("", provider_id, provider_name):
        return False
    if await admin_exists(db):
        return False
    won = await db.execute(
        dialect_insert(db)(SystemFlag)
        .values(name=BOOTSTRAP_FLAG, value=user_id, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    if not getattr(won, "rowcount", 0):
        return False  # the token bootstrap or another SSO login was first
    await grant_once(db, "User", user_id, "r-admin", "bootstrap-oidc")
    await bump_generation(db)
    record(
        db,
        Actor.system("bootstrap"),
        "bootstrap.oidc_first_admin",
        resource_type="user",
        resource_id=user_id,
        category="auth",
        details={"provider_id": provider_id, "groups": matched, "method": "oidc"},
    )
    return True
