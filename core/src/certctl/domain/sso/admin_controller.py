"""``/api/v1/auth/oidc``: SSO providers, their keys, dry runs and group → role mappings.

Providers are ``auth`` connector instances: the connector service validates the typed
configuration and stores the client secret encrypted; responses mask it. A provider is saved
only after its discovery document passed the downgrade defence and its keys loaded. Group
mappings are role grants to ``("Group", "<provider_id>:<group>")``, so the one grant model
(and its no-escalation rule) covers them.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import ConnectorInstance, RoleGrant
from certctl.domain.audit.service import record
from certctl.domain.auth.service import add_grant, remove_grant
from certctl.domain.connectors.schemas import (
    CheckOut,
    ConnectorCreate,
    ConnectorUpdate,
)
from certctl.domain.connectors.state import PlainSecretResolver
from certctl.domain.sessions.service import revoke_sessions
from certctl.domain.sso.providers import (
    FAMILY,
    idp_errors,
    is_sso_kind,
    login_url,
    provider_row,
    sso_instance,
)
from certctl.domain.sso.schemas import (
    GroupMappingIn,
    GroupMappingOut,
    JwksKeyOut,
    JwksStatusOut,
    ProviderOut,
)
from certctl.errors import BadRequest, CertctlError, NotFound, ServiceUnavailable
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.runtime import Runtime
from certctl_sdk import ConnectorContext, ConnectorError, TransientError, decode_config
from certctl_sdk.auth import JwksStatus, SsoProvider

__all__ = ["SsoAdminController"]


def _out(runtime: Runtime, row: ConnectorInstance) -> ProviderOut:
    rendered = runtime.connectors.render(row)
    return ProviderOut(
        id=row.id,
        name=row.name,
        type=row.kind,
        config=rendered.config,
        enabled=row.enabled,
        login_url=login_url(row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _status(provider_id: str, status: JwksStatus) -> JwksStatusOut:
    return JwksStatusOut(
        provider_id=provider_id,
        issuer=status.issuer,
        keys=[JwksKeyOut(kid=k.kid, kty=k.kty, alg=k.alg, crv=k.crv) for k in status.keys],
        fetched_at=status.fetched_at,
        expires_at=status.expires_at,
        refresh_count=status.refresh_count,
        last_error=status.last_error,
        last_error_at=status.last_error_at,
        advertised_algs=list(status.advertised_algs),
    )


def _require_sso_kind(runtime: Runtime, kind: str) -> None:
    runtime.connectors.spec(FAMILY, kind)  # 400 naming the installed kinds when unknown
    if not is_sso_kind(runtime, kind):
        raise BadRequest(f"auth kind {kind!r} is not a single sign-on provider")


async def _discover(provider: SsoProvider[Any]) -> None:
    """Refuse to save a provider whose discovery or keys are unusable (downgrade defence)."""
    try:
        await provider.refresh_keys()
    except TransientError as exc:
        raise ServiceUnavailable(f"not saved: the IdP is unreachable: {exc.message}") from None
    except ConnectorError as exc:
        raise BadRequest(f"not saved: {exc.message}") from None


class _NoState:
    """SSO providers keep no connector state; a dry run must not write any."""

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes) -> None:
        raise BadRequest("a dry run stores nothing")

    async def add(self, key: str, value: bytes) -> bool:
        raise BadRequest("a dry run stores nothing")

    async def delete(self, key: str) -> None:
        return None


def _split(actor_id: str) -> tuple[str, str]:
    provider_id, _, group = actor_id.partition(":")
    return provider_id, group


def _mapping_out(grant: RoleGrant) -> GroupMappingOut:
    provider_id, group = _split(grant.actor_id)
    return GroupMappingOut(
        id=grant.id,
        provider_id=provider_id,
        group=group,
        role_id=grant.role_id,
        scope_type=grant.scope_type,
        scope_id=grant.scope_id,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
    )


async def _mappings(session: AsyncSession, provider_id: str | None) -> list[RoleGrant]:
    query = select(RoleGrant).where(RoleGrant.actor_type == "Group")
    if provider_id:
        query = query.where(RoleGrant.actor_id.startswith(f"{provider_id}:", autoescape=True))
    rows = await session.scalars(query.order_by(RoleGrant.actor_id, RoleGrant.role_id))
    return [r for r in rows if ":" in r.actor_id]


class SsoAdminController(Controller):
    """SSO administration; the gates are the reference's ``auth.oidc.*`` permissions."""

    path = "/api/v1/auth/oidc"
    tags = ["SSO"]

    @get("/providers", opt={"permission": "auth.oidc.list"})
    async def list_providers(self, runtime: RuntimeDep, session: SessionDep) -> list[ProviderOut]:
        """Every SSO provider, enabled or not, secrets masked."""
        rows = await session.scalars(
            select(ConnectorInstance)
            .where(ConnectorInstance.family == FAMILY)
            .order_by(ConnectorInstance.name)
        )
        return [_out(runtime, r) for r in rows if is_sso_kind(runtime, r.kind)]

    @post("/providers", opt={"permission": "auth.oidc.create"}, status_code=201)
    async def create_provider(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[ConnectorCreate],
    ) -> ProviderOut:
        """Validate, check discovery and keys, then store (client secret encrypted)."""
        _require_sso_kind(runtime, data.type)
        row = await runtime.connectors.create(session, FAMILY, data)
        await _discover(sso_instance(runtime, row))
        record(
            session,
            actor,
            "auth.oidc.provider.create",
            resource_type="sso_provider",
            resource_id=row.id,
            category="auth",
            details={"type": row.kind, "name": row.name},
        )
        await session.commit()
        return _out(runtime, row)

    @get("/providers/{provider_id:str}", opt={"permission": "auth.oidc.list"})
    async def get_provider(
        self, runtime: RuntimeDep, session: SessionDep, provider_id: FromPath[str]
    ) -> ProviderOut:
        """One provider, secret masked."""
        return _out(runtime, await provider_row(runtime, session, provider_id))

    @put("/providers/{provider_id:str}", opt={"permission": "auth.oidc.edit"})
    async def update_provider(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        provider_id: FromPath[str],
        data: JSONBody[ConnectorUpdate],
    ) -> ProviderOut:
        """Change name, configuration or enabled; a new or re-enabled one is checked first.

        Disabling a provider ends its sessions.
        """
        row = await provider_row(runtime, session, provider_id)
        was_enabled = row.enabled
        await runtime.connectors.update(session, row, data)
        if row.enabled and (data.config is not None or not was_enabled):
            await session.flush()
            await _discover(sso_instance(runtime, row))
        ended = 0
        if was_enabled and not row.enabled:
            ended = await revoke_sessions(session, provider_id=row.id, reason="provider disabled")
        fields = [f for f in ("name", "config", "enabled") if getattr(data, f) is not None]
        record(
            session,
            actor,
            "auth.oidc.provider.update",
            resource_type="sso_provider",
            resource_id=row.id,
            category="auth",
            details={"fields": fields, "sessions_ended": ended},
        )
        await session.commit()
        if ended:
            runtime.auth_generation.invalidate()
        return _out(runtime, row)

    @delete("/providers/{provider_id:str}", opt={"permission": "auth.oidc.delete"})
    async def delete_provider(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        provider_id: FromPath[str],
    ) -> None:
        """Delete a provider, its group mappings and its logins in flight; end its sessions."""
        row = await provider_row(runtime, session, provider_id)
        for grant in await _mappings(session, row.id):
            await remove_grant(session, grant)  # refuses to remove the last admin grant
        ended = await revoke_sessions(session, provider_id=row.id, reason="provider deleted")
        await session.delete(row)
        record(
            session,
            actor,
            "auth.oidc.provider.delete",
            resource_type="sso_provider",
            resource_id=row.id,
            category="auth",
            details={"name": row.name, "sessions_ended": ended},
        )
        await session.commit()
        runtime.auth_generation.invalidate()

    @post(
        "/providers/{provider_id:str}/refresh",
        opt={"permission": "auth.oidc.edit"},
        status_code=200,
    )
    async def refresh_provider(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        provider_id: FromPath[str],
    ) -> JwksStatusOut:
        """Re-fetch discovery (downgrade defence again) and keys now, in this process."""
        row = await provider_row(runtime, session, provider_id)
        provider = sso_instance(runtime, row)
        outcome, message = "success", ""
        try:
            with idp_errors("refresh failed"):
                await provider.refresh_keys()
        except CertctlError as exc:
            outcome, message = "failure", exc.detail
            raise
        finally:
            record(
                session,
                actor,
                "auth.oidc.provider.refresh",
                resource_type="sso_provider",
                resource_id=row.id,
                outcome=outcome,
                category="auth",
                details={"message": message[:300]} if message else {},
            )
            await session.commit()
        return _status(row.id, provider.jwks_status())

    @get("/providers/{provider_id:str}/jwks-status", opt={"permission": "auth.oidc.list"})
    async def jwks_status(
        self, runtime: RuntimeDep, session: SessionDep, provider_id: FromPath[str]
    ) -> JwksStatusOut:
        """The key cache of this process: keys, when fetched, refreshes, the last error."""
        row = await provider_row(runtime, session, provider_id)
        return _status(row.id, sso_instance(runtime, row).jwks_status())

    @post("/test", opt={"permission": "auth.oidc.create"}, status_code=200)
    async def test_provider(self, runtime: RuntimeDep, data: JSONBody[ConnectorCreate]) -> CheckOut:
        """Dry run: discovery, downgrade defence, issuer match and keys; nothing is saved."""
        _require_sso_kind(runtime, data.type)
        spec = runtime.connectors.spec(FAMILY, data.type)
        config = decode_config(spec.cls.Config, data.config)
        context = ConnectorContext(
            instance_id="dry-run",
            http=runtime.http,
            logger=logging.getLogger(f"certctl.connector.auth.{data.type}"),
            clock=utcnow,
            secrets=PlainSecretResolver(),
            state=_NoState(),
        )
        provider = spec.cls(config, context)
        try:
            result = await provider.check()
        finally:
            await provider.aclose()
        return CheckOut(ok=result.ok, message=result.message, details=dict(result.details))

    @get("/group-mappings", opt={"permission": "auth.oidc.list"})
    async def list_mappings(
        self, session: SessionDep, provider_id: FromQuery[str | None] = None
    ) -> list[GroupMappingOut]:
        """Every group → role mapping (optionally of one provider)."""
        return [_mapping_out(g) for g in await _mappings(session, provider_id)]

    @post("/group-mappings", opt={"permission": "auth.oidc.edit"}, status_code=201)
    async def create_mapping(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[GroupMappingIn],
    ) -> GroupMappingOut:
        """Let members of an IdP group hold a role (you must hold every permission it gives)."""
        row = await provider_row(runtime, session, data.provider_id)
        grant = await add_grant(
            session,
            actor,
            actor_type="Group",
            actor_id=f"{row.id}:{data.group}",
            role_id=data.role_id,
            scope_type=data.scope_type,
            scope_id=data.scope_id,
        )
        record(
            session,
            actor,
            "auth.oidc.group_mapping.create",
            resource_type="role_grant",
            resource_id=grant.id,
            category="auth",
            details={"provider_id": row.id, "group": data.group, "role_id": data.role_id},
        )
        await session.commit()
        runtime.auth_generation.invalidate()
        return _mapping_out(grant)

    @delete("/group-mappings/{mapping_id:str}", opt={"permission": "auth.oidc.edit"})
    async def delete_mapping(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        mapping_id: FromPath[str],
    ) -> None:
        """Remove a mapping; members lose the role at their next request."""
        grant = await session.get(RoleGrant, mapping_id)
        if grant is None or grant.actor_type != "Group" or ":" not in grant.actor_id:
            raise NotFound(f"group mapping {mapping_id!r} not found")
        await remove_grant(session, grant)  # refuses to remove the last admin grant
        provider_id, group = _split(grant.actor_id)
        record(
            session,
            actor,
            "auth.oidc.group_mapping.delete",
            resource_type="role_grant",
            resource_id=grant.id,
            category="auth",
            details={"provider_id": provider_id, "group": group, "role_id": grant.role_id},
        )
        await session.commit()
        runtime.auth_generation.invalidate()
