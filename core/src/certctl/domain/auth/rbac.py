"""Resolving an actor's role grants to the permissions it holds.

Grants belong to an actor (an API key's name, a user's id) or to a group the actor is in;
a user's groups come from their identity provider at login. A resolved set is cached per
process until the auth generation moves (see ``generation.py``) or the earliest of its grants
expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.models import RoleGrant, RolePermission
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import GenerationWatch

__all__ = ["DEMO_ACTOR", "Grants", "RoleResolver"]

DEMO_ACTOR = ("Anonymous", "actor-demo-anon")
"""The synthetic actor every request runs as when ``CERTCTL_AUTH_TYPE=none``."""

_CACHE_MAX = 10_000


class Grants(NamedTuple):
    """What an actor's grants add up to."""

    permissions: frozenset[str]
    scoped: frozenset[tuple[str, str, str]]
    roles: tuple[str, ...]


_NONE = Grants(frozenset(), frozenset(), ())


class RoleResolver:
    """``(actor type, actor id, groups)`` → :class:`Grants`, cached per generation."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], generation: GenerationWatch
    ) -> None:
        self._sessions = sessions
        self._generation = generation
        self._seen = -1
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[Grants, datetime | None]] = {}

    async def resolve(self, actor_type: str, actor_id: str, groups: tuple[str, ...] = ()) -> Grants:
        """The permissions of the actor's own grants plus its groups' grants."""
        generation = await self._generation.current()
        if generation != self._seen:
            self._cache.clear()
            self._seen = generation
        key = (actor_type, actor_id, groups)
        cached = self._cache.get(key)
        now = utcnow()
        if cached is not None and (cached[1] is None or cached[1] > now):
            return cached[0]
        async with self._sessions() as session:
            grants, expires = await load_grants(session, actor_type, actor_id, groups, now)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (grants, expires)
        return grants

    async def actor(
        self,
        actor_type: str,
        actor_id: str,
        *,
        groups: tuple[str, ...] = (),
        session_id: str | None = None,
        display_name: str = "",
    ) -> Actor:
        """An :class:`Actor` carrying its resolved permissions."""
        grants = await self.resolve(actor_type, actor_id, groups)
        return Actor(
            name=actor_id,
            type=actor_type,
            permissions=grants.permissions,
            scoped=grants.scoped,
            roles=grants.roles,
            session_id=session_id,
            display_name=display_name,
        )


async def load_grants(
    session: AsyncSession,
    actor_type: str,
    actor_id: str,
    groups: tuple[str, ...],
    now: datetime,
) -> tuple[Grants, datetime | None]:
    """Read the live grants and their permissions; also the earliest expiry among them."""
    holders = [and_(RoleGrant.actor_type == actor_type, RoleGrant.actor_id == actor_id)]
    if groups:
        holders.append(and_(RoleGrant.actor_type == "Group", RoleGrant.actor_id.in_(groups)))
    rows = (
        await session.execute(
            select(
                RoleGrant.role_id,
                RoleGrant.scope_type,
                RoleGrant.scope_id,
                RoleGrant.expires_at,
                RolePermission.permission,
            )
            .join(RolePermission, RolePermission.role_id == RoleGrant.role_id)
            .where(
                or_(*holders),
                or_(RoleGrant.expires_at.is_(None), RoleGrant.expires_at > now),
            )
        )
    ).all()
    if not rows:
        return _NONE, None
    permissions: set[str] = set()
    scoped: set[tuple[str, str, str]] = set()
    roles: dict[str, None] = {}
    expires: datetime | None = None
    for role_id, scope_type, scope_id, expires_at, permission in rows:
        roles[role_id] = None
        if scope_type == "global":
            permissions.add(permission)
        else:
            scoped.add((permission, scope_type, scope_id))
        if expires_at is not None and (expires is None or expires_at < expires):
            expires = expires_at
    return Grants(frozenset(permissions), frozenset(scoped), tuple(sorted(roles))), expires
