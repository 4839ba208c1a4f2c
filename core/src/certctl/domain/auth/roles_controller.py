"""Roles (built-in and custom) and role grants to any actor."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import Permission, Role, RoleGrant, RolePermission
from certctl.domain.audit.service import record
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.schemas import (
    GrantIn,
    GrantOut,
    PermissionsIn,
    RoleIn,
    RoleOut,
    RoleUpdate,
)
from certctl.domain.auth.service import (
    add_grant_and_commit,
    audit_grant,
    check_no_escalation,
    grant_out,
    remove_grant,
    role_permissions,
)
from certctl.errors import BadRequest, Conflict, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["GrantsController", "RolesController"]


async def _out(session: AsyncSession, role: Role) -> RoleOut:
    return RoleOut(
        id=role.id,
        name=role.name,
        description=role.description,
        builtin=role.builtin,
        permissions=sorted(await role_permissions(session, role.id)),
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


async def _custom(session: AsyncSession, role_id: str) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise NotFound(f"role {role_id!r} not found")
    if role.builtin:
        raise Conflict(f"{role_id} is built in and cannot be changed; create a custom role")
    return role


async def _known(session: AsyncSession, permissions: list[str]) -> frozenset[str]:
    wanted = frozenset(permissions)
    known = set(await session.scalars(select(Permission.name).where(Permission.name.in_(wanted))))
    unknown = sorted(wanted - known)
    if unknown:
        raise BadRequest(f"unknown permissions: {', '.join(unknown)}")
    return wanted


async def _set_permissions(
    session: AsyncSession, role_id: str, permissions: frozenset[str]
) -> None:
    await session.execute(sql_delete(RolePermission).where(RolePermission.role_id == role_id))
    session.add_all(RolePermission(role_id=role_id, permission=p) for p in sorted(permissions))


class RolesController(Controller):
    """``/api/v1/auth/roles``."""

    path = "/api/v1/auth/roles"
    tags = ["Auth"]

    @get("/", opt={"permission": "auth.role.list"})
    async def list_roles(self, session: SessionDep) -> list[RoleOut]:
        """Every role with its permissions."""
        roles = await session.scalars(select(Role).order_by(Role.builtin.desc(), Role.name))
        return [await _out(session, r) for r in roles]

    @get("/{role_id:str}", opt={"permission": "auth.role.list"})
    async def get_role(self, session: SessionDep, role_id: FromPath[str]) -> RoleOut:
        """One role."""
        role = await session.get(Role, role_id)
        if role is None:
            raise NotFound(f"role {role_id!r} not found")
        return await _out(session, role)

    @post("/", opt={"permission": "auth.role.create"}, status_code=201)
    async def create_role(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[RoleIn]
    ) -> RoleOut:
        """A custom role; it may hold only permissions the caller holds."""
        permissions = await _known(session, data.permissions)
        check_no_escalation(actor, permissions, "this role")
        role = Role(
            id=new_id("r"),
            name=data.name,
            description=data.description,
            builtin=False,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(role)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"a role named {data.name!r} exists") from None
        await _set_permissions(session, role.id, permissions)
        record(
            session,
            actor,
            "auth.role.create",
            resource_type="role",
            resource_id=role.id,
            category="auth",
            details={"name": role.name, "permissions": sorted(permissions)},
        )
        await session.commit()
        return await _out(session, role)

    @put("/{role_id:str}", opt={"permission": "auth.role.edit"})
    async def update_role(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        role_id: FromPath[str],
        data: JSONBody[RoleUpdate],
    ) -> RoleOut:
        """Rename, re-describe or replace the permissions of a custom role."""
        role = await _custom(session, role_id)
        details: dict[str, object] = {}
        if data.name is not None and data.name != role.name:
            details["name"] = data.name
            role.name = data.name
        if data.description is not None:
            role.description = data.description
        if data.permissions is not None:
            permissions = await _known(session, data.permissions)
            check_no_escalation(actor, permissions, "this role")
            await _set_permissions(session, role.id, permissions)
            details["permissions"] = sorted(permissions)
            await bump_generation(session)
        role.updated_at = utcnow()
        record(
            session,
            actor,
            "auth.role.edit",
            resource_type="role",
            resource_id=role.id,
            category="auth",
            details=details,
        )
        try:
            await session.commit()
        except IntegrityError:
            raise Conflict(f"a role named {data.name!r} exists") from None
        runtime.auth_generation.invalidate()
        return await _out(session, role)

    @delete("/{role_id:str}", opt={"permission": "auth.role.delete"})
    async def delete_role(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, role_id: FromPath[str]
    ) -> None:
        """Delete a custom role that nobody holds."""
        role = await _custom(session, role_id)
        holders = await session.scalar(
            select(func.count()).select_from(RoleGrant).where(RoleGrant.role_id == role_id)
        )
        if holders:
            raise Conflict(f"{holders} grant(s) hold {role_id}; revoke them first")
        await session.delete(role)
        record(
            session,
            actor,
            "auth.role.delete",
            resource_type="role",
            resource_id=role_id,
            category="auth",
            details={"name": role.name},
        )
        await session.commit()

    @post("/{role_id:str}/permissions", opt={"permission": "auth.role.edit"}, status_code=200)
    async def add_permissions(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        role_id: FromPath[str],
        data: JSONBody[PermissionsIn],
    ) -> RoleOut:
        """Add permissions to a custom role."""
        role = await _custom(session, role_id)
        added = await _known(session, data.permissions)
        check_no_escalation(actor, added, "this role")
        current = await role_permissions(session, role_id)
        await _set_permissions(session, role_id, current | added)
        role.updated_at = utcnow()
        await bump_generation(session)
        record(
            session,
            actor,
            "auth.role.edit",
            resource_type="role",
            resource_id=role_id,
            category="auth",
            details={"added": sorted(added - current)},
        )
        await session.commit()
        runtime.auth_generation.invalidate()
        return await _out(session, role)

    @delete(
        "/{role_id:str}/permissions/{permission:str}",
        opt={"permission": "auth.role.edit"},
        status_code=204,
    )
    async def remove_permission(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        role_id: FromPath[str],
        permission: FromPath[str],
    ) -> None:
        """Take one permission from a custom role."""
        role = await _custom(session, role_id)
        current = await role_permissions(session, role_id)
        if permission not in current:
            raise NotFound(f"{role_id} does not hold {permission!r}")
        await _set_permissions(session, role_id, current - {permission})
        role.updated_at = utcnow()
        await bump_generation(session)
        record(
            session,
            actor,
            "auth.role.edit",
            resource_type="role",
            resource_id=role_id,
            category="auth",
            details={"removed": [permission]},
        )
        await session.commit()
        runtime.auth_generation.invalidate()


class GrantsController(Controller):
    """``/api/v1/auth/grants``: role grants to keys, users and groups."""

    path = "/api/v1/auth/grants"
    tags = ["Auth"]

    @get("/", opt={"permission": "auth.role.list"})
    async def list_grants(
        self,
        session: SessionDep,
        actor_type: FromQuery[str | None] = None,
        actor_id: FromQuery[str | None] = None,
        role_id: FromQuery[str | None] = None,
    ) -> list[GrantOut]:
        """Grants, optionally filtered."""
        query = select(RoleGrant).order_by(RoleGrant.granted_at, RoleGrant.id)
        if actor_type is not None:
            query = query.where(RoleGrant.actor_type == actor_type)
        if actor_id is not None:
            query = query.where(RoleGrant.actor_id == actor_id)
        if role_id is not None:
            query = query.where(RoleGrant.role_id == role_id)
        return [grant_out(g) for g in await session.scalars(query)]

    @post("/", opt={"permission": "auth.role.assign"}, status_code=201)
    async def create_grant(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, data: JSONBody[GrantIn]
    ) -> GrantOut:
        """Grant a role, globally or for one profile or issuer."""
        return await add_grant_and_commit(
            runtime,
            session,
            actor,
            actor_type=data.actor_type,
            actor_id=data.actor_id,
            role_id=data.role_id,
            scope_type=data.scope_type,
            scope_id=data.scope_id,
            expires_at=data.expires_at,
        )

    @delete("/{grant_id:str}", opt={"permission": "auth.role.revoke"})
    async def delete_grant(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, grant_id: FromPath[str]
    ) -> None:
        """Revoke a grant."""
        grant = await session.get(RoleGrant, grant_id)
        if grant is None:
            raise NotFound(f"grant {grant_id!r} not found")
        await remove_grant(session, grant)
        audit_grant(session, actor, "auth.role.revoke", grant)
        await session.commit()
        runtime.auth_generation.invalidate()
