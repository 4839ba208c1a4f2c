"""API keys: list, mint, rotate, revoke, and the roles of a key's name.

A key's privileges are the grants of its name, so a rotated key (same name, new secret) keeps
them without a second grant, exactly like the rotation overlap of environment keys.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import ApiKey, RoleGrant
from certctl.domain.audit.service import record
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.keystore import generate_api_key, hash_api_key
from certctl.domain.auth.schemas import GrantOut, KeyIn, KeyOut, KeyRoleIn
from certctl.domain.auth.service import (
    add_grant,
    add_grant_and_commit,
    audit_grant,
    check_no_escalation,
    remove_grant,
    role_permissions,
)
from certctl.errors import BadRequest, Conflict, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["KeysController"]


class RotateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long the old key keeps working after the new one is minted."""

    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)] = 86400


async def _roles_of(session: AsyncSession, names: set[str]) -> dict[str, list[str]]:
    rows = await session.execute(
        select(RoleGrant.actor_id, RoleGrant.role_id).where(
            RoleGrant.actor_type == "APIKey", RoleGrant.actor_id.in_(names)
        )
    )
    out: dict[str, list[str]] = {name: [] for name in names}
    for name, role in rows:
        out[name].append(role)
    return {k: sorted(set(v)) for k, v in out.items()}


def _out(row: ApiKey, roles: list[str], plaintext: str | None = None) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        source="database",
        roles=roles,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        key=plaintext,
    )


async def _key_name(runtime: RuntimeDep, session: AsyncSession, key_id: str) -> str:
    """The name behind a database key id or an environment key name."""
    if key_id in runtime.keys.env_names:
        return key_id
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    return row.name


class KeysController(Controller):
    """``/api/v1/auth/keys``."""

    path = "/api/v1/auth/keys"
    tags = ["Auth"]

    @get("/", opt={"permission": "auth.key.list"})
    async def list_keys(self, runtime: RuntimeDep, session: SessionDep) -> list[KeyOut]:
        """Environment keys (by name) and database keys (never their secrets)."""
        rows = list(await session.scalars(select(ApiKey).order_by(ApiKey.created_at)))
        roles = await _roles_of(session, {r.name for r in rows} | set(runtime.keys.env_names))
        env = [
            KeyOut(
                id=name,
                name=name,
                source="environment",
                roles=roles[name],
                created_by="environment",
                created_at=None,
                expires_at=None,
                revoked_at=None,
            )
            for name in sorted(runtime.keys.env_names)
        ]
        return env + [_out(r, roles[r.name]) for r in rows]

    @post("/", opt={"permission": "auth.key.create"}, status_code=201)
    async def create_key(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, data: JSONBody[KeyIn]
    ) -> KeyOut:
        """Mint a key and grant its name ``roles``; the plaintext is in this response only."""
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise BadRequest("expires_at must be in the future")
        if data.name in runtime.keys.env_names:
            raise Conflict(f"{data.name!r} is an environment key's name")
        taken = await session.scalar(
            select(ApiKey.id).where(ApiKey.name == data.name, ApiKey.revoked_at.is_(None))
        )
        if taken is not None:
            raise Conflict(f"a live key named {data.name!r} exists; rotate it instead")
        wanted: frozenset[str] = frozenset()
        for role_id in data.roles:
            wanted |= await role_permissions(session, role_id)
        check_no_escalation(actor, wanted, "this key")
        plaintext = generate_api_key()
        row = ApiKey(
            id=new_id("ak"),
            name=data.name,
            key_hash=hash_api_key(plaintext),
            created_by=actor.name,
            created_at=utcnow(),
            expires_at=data.expires_at,
        )
        session.add(row)
        held = await _roles_of(session, {data.name})
        for role_id in sorted(set(data.roles) - set(held[data.name])):
            await add_grant(
                session, actor, actor_type="APIKey", actor_id=data.name, role_id=role_id
            )
        record(
            session,
            actor,
            "auth.key.create",
            resource_type="api_key",
            resource_id=row.id,
            category="auth",
            details={"name": row.name, "roles": sorted(data.roles)},
        )
        await bump_generation(session)
        await session.commit()
        runtime.auth_generation.invalidate()
        return _out(row, (await _roles_of(session, {row.name}))[row.name], plaintext)

    @post("/{key_id:str}/rotate", opt={"permission": "auth.key.rotate"}, status_code=201)
    async def rotate_key(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        key_id: FromPath[str],
        data: JSONBody[RotateIn | None] = None,
    ) -> KeyOut:
        """A new secret for the same name; the old one expires after ``overlap_seconds``."""
        old = await session.get(ApiKey, key_id)
        if old is None:
            raise NotFound(f"API key {key_id!r} not found (environment keys rotate in the env)")
        if old.revoked_at is not None:
            raise Conflict("a revoked key cannot be rotated")
        overlap = timedelta(seconds=(data or RotateIn()).overlap_seconds)
        end = utcnow() + overlap
        if old.expires_at is None or old.expires_at > end:
            old.expires_at = end
        plaintext = generate_api_key()
        row = ApiKey(
            id=new_id("ak"),
            name=old.name,
            key_hash=hash_api_key(plaintext),
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(row)
        record(
            session,
            actor,
            "auth.key.rotate",
            resource_type="api_key",
            resource_id=row.id,
            category="auth",
            details={"name": row.name, "replaces": old.id, "old_expires_at": end.isoformat()},
        )
        await bump_generation(session)
        await session.commit()
        runtime.auth_generation.invalidate()
        return _out(row, (await _roles_of(session, {row.name}))[row.name], plaintext)

    @delete("/{key_id:str}", opt={"permission": "auth.key.delete"})
    async def revoke_key(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, key_id: FromPath[str]
    ) -> None:
        """Revoke a key: refused here at once, on other replicas within the auth cache bound."""
        row = await session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            record(
                session,
                actor,
                "auth.key.revoke",
                resource_type="api_key",
                resource_id=row.id,
                category="auth",
                details={"name": row.name},
            )
            await bump_generation(session)
            await session.commit()
        runtime.auth_generation.invalidate()

    @post("/{key_id:str}/roles", opt={"permission": "auth.role.assign"}, status_code=201)
    async def grant_key_role(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        key_id: FromPath[str],
        data: JSONBody[KeyRoleIn],
    ) -> GrantOut:
        """Grant a role to the key's name (database key id or environment key name)."""
        name = await _key_name(runtime, session, key_id)
        return await add_grant_and_commit(
            runtime,
            session,
            actor,
            actor_type="APIKey",
            actor_id=name,
            role_id=data.role_id,
            scope_type=data.scope_type,
            scope_id=data.scope_id,
            expires_at=data.expires_at,
        )

    @delete(
        "/{key_id:str}/roles/{role_id:str}", opt={"permission": "auth.role.revoke"}, status_code=204
    )
    async def revoke_key_role(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        key_id: FromPath[str],
        role_id: FromPath[str],
    ) -> None:
        """Remove every grant of ``role_id`` (any scope) from the key's name."""
        name = await _key_name(runtime, session, key_id)
        grants = list(
            await session.scalars(
                select(RoleGrant).where(
                    RoleGrant.actor_type == "APIKey",
                    RoleGrant.actor_id == name,
                    RoleGrant.role_id == role_id,
                )
            )
        )
        if not grants:
            raise NotFound(f"{name!r} does not hold {role_id!r}")
        for grant in grants:
            await remove_grant(session, grant)
            audit_grant(session, actor, "auth.role.revoke", grant)
        await session.commit()
        runtime.auth_generation.invalidate()
