"""Identity, day-0 bootstrap, the demo residual and the auth configuration.

Keys are in ``keys_controller.py``, roles and grants in ``roles_controller.py``.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from certctl.db.base import new_id, utcnow
from certctl.db.models import ApiKey, Permission, SystemFlag
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.keystore import generate_api_key, hash_api_key
from certctl.domain.auth.rbac import DEMO_ACTOR
from certctl.domain.auth.schemas import BootstrapIn, BootstrapStatus, KeyOut, PermissionOut, WhoAmI
from certctl.domain.auth.seeding import clear_demo_residual, demo_residual, grant_once
from certctl.domain.auth.service import admin_exists
from certctl.domain.sso.providers import login_options
from certctl.domain.sso.schemas import LoginOption
from certctl.errors import BadRequest, Gone, Unauthorized
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["AuthController"]

_NAME = re.compile(r"^[a-z0-9_-]{3,64}$")
BOOTSTRAP_FLAG = "bootstrap_consumed"


class AuthInfo(msgspec.Struct, kw_only=True):
    """What an unauthenticated client (the dashboard's login page) needs to know."""

    auth_type: str
    methods: list[str]
    """``api-key`` always (outside demo mode); ``sso`` and ``breakglass`` when configured."""
    sso_providers: list[LoginOption] = msgspec.field(default_factory=list)
    """Enabled SSO providers and where a browser starts signing in with each."""


class ResidualOut(msgspec.Struct, kw_only=True):
    """The demo actor's grants: how many there were and how many are left."""

    removed: int
    remaining: int


class RuntimeConfig(msgspec.Struct, kw_only=True):
    """Effective authentication settings (never a secret)."""

    auth_type: str
    environment_keys: list[str]
    environment_admin_keys: list[str]
    bootstrap_token_set: bool
    auth_cache_ms: int
    demo_mode_residual_strict: bool
    demo_residual_grants: int


async def bootstrap_available(runtime: RuntimeDep, session: SessionDep) -> bool:
    """Open only with a configured token, before first use, while no admin exists."""
    if not runtime.settings.bootstrap_token or runtime.keys.env_admins:
        return False
    if await session.get(SystemFlag, BOOTSTRAP_FLAG) is not None:
        return False
    return not await admin_exists(session)


def who(actor: Actor) -> WhoAmI:
    """The identity document of ``actor``."""
    return WhoAmI(
        name=actor.name,
        type=actor.type,
        display_name=actor.display_name or actor.name,
        roles=list(actor.roles),
        permissions=sorted(actor.permissions),
        scoped_permissions=[list(s) for s in sorted(actor.scoped)],
        session_id=actor.session_id,
    )


class AuthController(Controller):
    """``/api/v1/auth``: who am I, bootstrap, demo residual, configuration."""

    path = "/api/v1/auth"
    tags = ["Auth"]

    @get("/info", opt={"public": True})
    async def info(self, runtime: RuntimeDep, session: SessionDep) -> AuthInfo:
        """How to sign in."""
        settings = runtime.settings
        methods = [] if settings.auth_type == "none" else ["api-key"]
        methods += runtime.auth_methods
        providers = await login_options(runtime, session)
        if providers and "sso" not in methods:
            methods.append("sso")
        return AuthInfo(auth_type=settings.auth_type, methods=methods, sso_providers=providers)

    @get("/bootstrap", opt={"public": True})
    async def bootstrap_status(self, runtime: RuntimeDep, session: SessionDep) -> BootstrapStatus:
        """Whether a first admin key can still be minted."""
        return BootstrapStatus(available=await bootstrap_available(runtime, session))

    @post("/bootstrap", opt={"public": True}, status_code=201)
    async def bootstrap(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        request: Request[Any, Any, Any],
        data: JSONBody[BootstrapIn],
    ) -> KeyOut:
        """Exchange ``CERTCTL_BOOTSTRAP_TOKEN`` for the first admin key, exactly once."""
        if not await bootstrap_available(runtime, session):
            raise Gone("bootstrap is closed: it was used, or an admin already exists")
        expected = runtime.settings.bootstrap_token.encode()
        if not hmac.compare_digest(data.token.encode(), expected):
            anonymous = Actor.anonymous(request.client.host if request.client else "unknown")
            record(
                session,
                anonymous,
                "bootstrap.consume",
                resource_type="api_key",
                resource_id="-",
                outcome="denied",
                category="auth",
            )
            await session.commit()
            raise Unauthorized("invalid bootstrap token")
        if not _NAME.match(data.name):
            raise BadRequest("name must be 3-64 characters of [a-z0-9_-]")
        plaintext = generate_api_key()
        row = ApiKey(
            id=new_id("ak"),
            name=data.name,
            key_hash=hash_api_key(plaintext),
            created_by="bootstrap",
            created_at=utcnow(),
        )
        # The flag's primary key makes "only once" atomic across requests and replicas, and
        # across the two bootstrap paths (this token and the SSO admin groups).
        session.add(SystemFlag(name=BOOTSTRAP_FLAG, value=row.id, created_at=utcnow()))
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:
            raise Gone("bootstrap is closed: it was used concurrently") from None
        await grant_once(session, "APIKey", row.name, "r-admin", "bootstrap")
        await bump_generation(session)
        record(
            session,
            Actor.system("bootstrap"),
            "bootstrap.consume",
            resource_type="api_key",
            resource_id=row.id,
            category="auth",
            details={"name": row.name, "method": "token"},
        )
        try:
            await session.commit()
        except IntegrityError:
            raise Gone("bootstrap is closed: it was used concurrently") from None
        runtime.auth_generation.invalidate()
        return KeyOut(
            id=row.id,
            name=row.name,
            source="database",
            roles=["r-admin"],
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=None,
            revoked_at=None,
            key=plaintext,
        )

    @get("/check", opt={"authenticated": True}, sync_to_thread=False)
    def check(self, actor: ActorDep) -> WhoAmI:
        """Who the credentials belong to and what they may do."""
        return who(actor)

    @get("/me", opt={"authenticated": True}, sync_to_thread=False)
    def me(self, actor: ActorDep) -> WhoAmI:
        """The same as ``/check`` (the reference's name for the dashboard)."""
        return who(actor)

    @get("/permissions", opt={"authenticated": True})
    async def permissions(self, session: SessionDep) -> list[PermissionOut]:
        """The permission catalogue."""
        rows = await session.scalars(select(Permission).order_by(Permission.name))
        return [PermissionOut(name=r.name, namespace=r.namespace) for r in rows]

    @post("/demo-residual/cleanup", opt={"permission": "auth.role.assign"}, status_code=200)
    async def cleanup_demo_residual(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
    ) -> ResidualOut:
        """Remove the demo actor's admin grant left by an earlier demo run (idempotent)."""
        if runtime.settings.auth_type == "none":
            raise BadRequest("the demo actor's grant is in use: this server runs in demo mode")
        removed = await clear_demo_residual(session)
        if removed:
            record(
                session,
                actor,
                "auth.demo_residual.cleanup",
                resource_type="role_grant",
                resource_id=DEMO_ACTOR[1],
                category="auth",
                details={"removed": removed},
            )
        await session.commit()
        runtime.auth_generation.invalidate()
        return ResidualOut(removed=removed, remaining=await demo_residual(session))

    @get("/runtime-config", opt={"permission": "auth.role.assign"})
    async def runtime_config(self, runtime: RuntimeDep, session: SessionDep) -> RuntimeConfig:
        """Effective authentication settings."""
        settings = runtime.settings
        return RuntimeConfig(
            auth_type=settings.auth_type,
            environment_keys=sorted(runtime.keys.env_names),
            environment_admin_keys=sorted(runtime.keys.env_admins),
            bootstrap_token_set=bool(settings.bootstrap_token),
            auth_cache_ms=settings.auth_cache_ms,
            demo_mode_residual_strict=settings.demo_mode_residual_strict,
            demo_residual_grants=await demo_residual(session),
        )
