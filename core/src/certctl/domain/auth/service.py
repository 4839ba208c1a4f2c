"""Role grants and custom roles: the rules every RBAC endpoint shares.

No escalation: a caller may grant a role (or give a new key roles, or add a permission to a
role) only when it holds every permission involved itself. ``auth.role.assign`` alone does
not let an operator-level admin helper mint an admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import Role, RoleGrant, RolePermission
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.rbac import DEMO_ACTOR
from certctl.domain.auth.schemas import GrantOut
from certctl.errors import BadRequest, Conflict, Forbidden

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "ACTOR_TYPES",
    "SCOPE_TYPES",
    "add_grant",
    "add_grant_and_commit",
    "admin_exists",
    "audit_grant",
    "check_no_escalation",
    "grant_out",
    "remove_grant",
    "role_permissions",
]

ACTOR_TYPES = ("APIKey", "User", "Group")
"""Who can hold a grant through the API (the demo actor's grant is the server's own)."""

SCOPE_TYPES = ("global", "profile", "issuer", "target")


async def role_permissions(session: AsyncSession, role_id: str) -> frozenset[str]:
    """The permissions of a role named in a request body; 400 when it does not exist."""
    if await session.get(Role, role_id) is None:
        raise BadRequest(f"unknown role {role_id!r}")
    rows = await session.scalars(
        select(RolePermission.permission).where(RolePermission.role_id == role_id)
    )
    return frozenset(rows)


def check_no_escalation(actor: Actor, permissions: frozenset[str], what: str) -> None:
    """Forbidden unless ``actor`` holds every permission in ``permissions`` globally."""
    missing = sorted(permissions - actor.permissions)
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise Forbidden(f"{what} would grant permissions you do not hold: {shown}")


async def admin_exists(session: AsyncSession) -> bool:
    """Does a key or user (not the demo actor) hold a live global ``r-admin`` grant?"""
    found = await session.scalar(
        select(RoleGrant.id)
        .where(
            RoleGrant.role_id == "r-admin",
            RoleGrant.scope_type == "global",
            RoleGrant.actor_type.in_(("APIKey", "User", "Group")),
            or_(RoleGrant.expires_at.is_(None), RoleGrant.expires_at > utcnow()),
        )
        .limit(1)
    )
    return found is not None


async def add_grant(
    session: AsyncSession,
    actor: Actor,
    *,
    actor_type: str,
    actor_id: str,
    role_id: str,
    scope_type: str = "global",
    scope_id: str = "",
    expires_at: datetime | None = None,
) -> RoleGrant:
    """Grant a role (in the caller's transaction, which must commit)."""
    if actor_type not in ACTOR_TYPES:
        raise BadRequest(f"actor_type must be one of {', '.join(ACTOR_TYPES)}")
    if (actor_type, actor_id) == DEMO_ACTOR:
        raise Forbidden("the demo actor is reserved")
    if scope_type not in SCOPE_TYPES:
        raise BadRequest(f"scope_type must be one of {', '.join(SCOPE_TYPES)}")
    if (scope_type == "global") != (scope_id == ""):
        raise BadRequest("scope_id is required for a scoped grant and must be empty for global")
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("expires_at must be in the future")
    check_no_escalation(actor, await role_permissions(session, role_id), f"granting {role_id}")
    grant = RoleGrant(
        id=new_id("rg"),
        actor_type=actor_type,
        actor_id=actor_id,
        role_id=role_id,
        scope_type=scope_type,
        scope_id=scope_id,
        granted_by=actor.name,
        granted_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(grant)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            f"{actor_type} {actor_id!r} already holds {role_id} for that scope"
        ) from None
    await bump_generation(session)
    return grant


async def remove_grant(session: AsyncSession, grant: RoleGrant) -> None:
    """Delete a grant (in the caller's transaction); refuses to remove the last admin."""
    if grant.role_id == "r-admin" and grant.scope_type == "global":
        others = await session.scalar(
            select(func.count())
            .select_from(RoleGrant)
            .where(
                RoleGrant.role_id == "r-admin",
                RoleGrant.scope_type == "global",
                RoleGrant.id != grant.id,
                RoleGrant.actor_type.in_(ACTOR_TYPES),
                or_(RoleGrant.expires_at.is_(None), RoleGrant.expires_at > utcnow()),
            )
        )
        if not others:
            raise Conflict("this is the last admin grant; grant r-admin to another actor first")
    await session.execute(delete(RoleGrant).where(RoleGrant.id == grant.id))
    await bump_generation(session)


def grant_out(row: RoleGrant) -> GrantOut:
    """The wire form of a grant."""
    return msgspec.convert(row, GrantOut, from_attributes=True)


def audit_grant(session: AsyncSession, actor: Actor, action: str, grant: RoleGrant) -> None:
    """Record a grant being made or removed."""
    record(
        session,
        actor,
        action,
        resource_type="role_grant",
        resource_id=grant.id,
        category="auth",
        details={
            "actor_type": grant.actor_type,
            "actor_id": grant.actor_id,
            "role_id": grant.role_id,
            "scope_type": grant.scope_type,
            "scope_id": grant.scope_id,
        },
    )


async def add_grant_and_commit(
    runtime: Runtime, session: AsyncSession, actor: Actor, **grant: Any
) -> GrantOut:
    """:func:`add_grant`, its audit row and the commit, then drop this process's caches."""
    row = await add_grant(session, actor, **grant)
    audit_grant(session, actor, "auth.role.assign", row)
    await session.commit()
    runtime.auth_generation.invalidate()
    return grant_out(row)
