"""Grants the server makes for itself at start: environment keys and the demo actor.

- An environment key marked ``admin`` always holds ``r-admin`` (the environment is the
  authority for it); any other environment key gets ``r-viewer`` once, when its name holds no
  grant at all, so an operator who re-grants it (say to ``r-agent``) is not overridden.
- In demo mode (``CERTCTL_AUTH_TYPE=none``) the synthetic demo actor holds ``r-admin``.
  Outside demo mode that grant is a residual of an earlier demo run: it is reported (a warning
  and an audit row), removed by ``POST /api/v1/auth/demo-residual/cleanup``, and with
  ``CERTCTL_DEMO_MODE_RESIDUAL_STRICT=true`` the server refuses to start while it exists.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import RoleGrant
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.rbac import DEMO_ACTOR
from certctl.settings import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.runtime import Runtime

__all__ = ["DemoResidualError", "clear_demo_residual", "demo_residual", "grant_once", "seed_grants"]

_log = logging.getLogger("certctl.auth")


class DemoResidualError(SettingsError):
    """The demo admin grant exists while strict residual checking is on."""


async def grant_once(
    session: AsyncSession, actor_type: str, actor_id: str, role_id: str, granted_by: str
) -> bool:
    """Grant a global role unless it is already held; True when a row was added."""
    result = await session.execute(
        dialect_insert(session)(RoleGrant)
        .values(
            id=new_id("rg"),
            actor_type=actor_type,
            actor_id=actor_id,
            role_id=role_id,
            scope_type="global",
            scope_id="",
            granted_by=granted_by,
            granted_at=utcnow(),
        )
        .on_conflict_do_nothing()
    )
    return bool(getattr(result, "rowcount", 0))


async def demo_residual(session: AsyncSession) -> int:
    """How many grants the demo actor holds."""
    count = await session.scalar(
        select(func.count())
        .select_from(RoleGrant)
        .where(RoleGrant.actor_type == DEMO_ACTOR[0], RoleGrant.actor_id == DEMO_ACTOR[1])
    )
    return int(count or 0)


async def clear_demo_residual(session: AsyncSession) -> int:
    """Delete the demo actor's grants (in the caller's transaction); how many went."""
    result = await session.execute(
        delete(RoleGrant).where(
            RoleGrant.actor_type == DEMO_ACTOR[0], RoleGrant.actor_id == DEMO_ACTOR[1]
        )
    )
    removed = int(getattr(result, "rowcount", 0) or 0)
    if removed:
        await bump_generation(session)
    return removed


async def seed_grants(runtime: Runtime) -> None:
    """Make the start-up grants; report or refuse a demo residual."""
    settings = runtime.settings
    system = Actor.system("bootstrap")
    async with runtime.sessions() as session:
        changed = False
        for name in sorted(runtime.keys.env_admins):
            changed |= await grant_once(session, "APIKey", name, "r-admin", "bootstrap")
        for name in sorted(runtime.keys.env_names - runtime.keys.env_admins):
            held = await session.scalar(
                select(RoleGrant.id)
                .where(RoleGrant.actor_type == "APIKey", RoleGrant.actor_id == name)
                .limit(1)
            )
            if held is None:
                changed |= await grant_once(session, "APIKey", name, "r-viewer", "bootstrap")
        if settings.auth_type == "none":
            changed |= await grant_once(session, *DEMO_ACTOR, "r-admin", "demo-mode")
        elif await demo_residual(session):
            if settings.demo_mode_residual_strict:
                raise DemoResidualError(
                    "the demo actor actor-demo-anon still holds an admin grant from an earlier "
                    "CERTCTL_AUTH_TYPE=none run; remove it (POST /api/v1/auth/demo-residual/"
                    "cleanup) or unset CERTCTL_DEMO_MODE_RESIDUAL_STRICT"
                )
            _log.warning(
                "the demo actor actor-demo-anon holds an admin grant outside demo mode; "
                "it grants nothing to callers now, but remove it with "
                "POST /api/v1/auth/demo-residual/cleanup"
            )
            record(
                session,
                system,
                "auth.demo_residual.detected",
                resource_type="role_grant",
                resource_id=DEMO_ACTOR[1],
                category="auth",
                outcome="warning",
            )
            changed = True
        if changed:
            await bump_generation(session)
        await session.commit()
    runtime.auth_generation.invalidate()
