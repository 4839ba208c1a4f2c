"""Day-0 bootstrap, identity check and database API keys."""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from certctl.db.base import new_id, utcnow
from certctl.db.models import ApiKey, SystemFlag
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.keystore import generate_api_key, hash_api_key
from certctl.domain.auth.permissions import permissions_for
from certctl.errors import BadRequest, Gone, NotFound, Unauthorized
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["AuthController"]

_NAME = re.compile(r"^[a-z0-9_-]{3,64}$")
BOOTSTRAP_FLAG = "bootstrap_consumed"


class BootstrapStatus(msgspec.Struct, kw_only=True):
    """Whether the bootstrap endpoint can still mint the first admin key."""

    available: bool


class BootstrapIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The bootstrap token and the name of the admin key to mint."""

    token: str
    name: str = "admin"


class KeyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new database API key."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{3,64}$")]
    admin: bool = False
    expires_at: datetime | None = None


class KeyOut(msgspec.Struct, kw_only=True):
    """A database API key; ``key`` is present only in the response that created it."""

    id: str
    name: str
    admin: bool
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    key: str | None = None


class WhoAmI(msgspec.Struct, kw_only=True):
    """The authenticated caller."""

    name: str
    type: str
    role: str
    permissions: list[str]


def _key_out(row: ApiKey, plaintext: str | None = None) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        admin=row.admin,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        key=plaintext,
    )


async def bootstrap_available(runtime: RuntimeDep, session: SessionDep) -> bool:
    """Open only with a configured token, before first use, while no admin key exists."""
    if not runtime.settings.bootstrap_token or runtime.keys.has_env_admin:
        return False
    if await session.get(SystemFlag, BOOTSTRAP_FLAG) is not None:
        return False
    admin = await session.scalar(
        select(ApiKey.id).where(ApiKey.admin.is_(True), ApiKey.revoked_at.is_(None)).limit(1)
    )
    return admin is None


class AuthController(Controller):
    """``/api/v1/auth``."""

    path = "/api/v1/auth"
    tags = ["Auth"]

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
            raise Gone("bootstrap is closed: it was used, or an admin key already exists")
        expected = runtime.settings.bootstrap_token.encode()
        if not hmac.compare_digest(data.token.encode(), expected):
            anonymous = Actor(
                name=request.client.host if request.client else "unknown", type="Anonymous", role=""
            )
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
            admin=True,
            created_by="bootstrap",
            created_at=utcnow(),
        )
        session.add(SystemFlag(name=BOOTSTRAP_FLAG, value=row.id, created_at=utcnow()))
        session.add(row)
        bootstrapper = Actor(name="bootstrap", type="System", role="admin")
        record(
            session,
            bootstrapper,
            "bootstrap.consume",
            resource_type="api_key",
            resource_id=row.id,
            category="auth",
            details={"name": row.name},
        )
        try:
            await session.commit()
        except IntegrityError:
            raise Gone("bootstrap is closed: it was used concurrently") from None
        runtime.keys.forget()
        return _key_out(row, plaintext)

    @get("/check", opt={"authenticated": True}, sync_to_thread=False)
    def check(self, actor: ActorDep) -> WhoAmI:
        """Who the credentials belong to and what they may do."""
        return WhoAmI(
            name=actor.name,
            type=actor.type,
            role=actor.role,
            permissions=sorted(permissions_for(actor.role)),
        )

    @get("/keys", opt={"permission": "auth.key.list"})
    async def list_keys(self, session: SessionDep) -> list[KeyOut]:
        """Database API keys (never their secrets)."""
        rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at))
        return [_key_out(r) for r in rows]

    @post("/keys", opt={"permission": "auth.key.create"}, status_code=201)
    async def create_key(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, data: JSONBody[KeyIn]
    ) -> KeyOut:
        """Mint a key; the plaintext is in this response only."""
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise BadRequest("expires_at must be in the future")
        plaintext = generate_api_key()
        row = ApiKey(
            id=new_id("ak"),
            name=data.name,
            key_hash=hash_api_key(plaintext),
            admin=data.admin,
            created_by=actor.name,
            created_at=utcnow(),
            expires_at=data.expires_at,
        )
        session.add(row)
        record(
            session,
            actor,
            "auth.key.create",
            resource_type="api_key",
            resource_id=row.id,
            category="auth",
            details={"name": row.name, "admin": row.admin},
        )
        await session.commit()
        return _key_out(row, plaintext)

    @delete("/keys/{key_id:str}", opt={"permission": "auth.key.delete"})
    async def revoke_key(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, key_id: FromPath[str]
    ) -> None:
        """Revoke a key: refused at once here, within 10 s (the lookup cache) on other replicas."""
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
            await session.commit()
        runtime.keys.forget()
