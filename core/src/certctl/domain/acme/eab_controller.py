"""ACME administration: External Account Binding keys and the accounts registered with them.

Every route needs ``acme.admin`` (held by the admin role only): an EAB key admits an ACME
client to a profile's directory, which is as strong as a certificate-issuing credential.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import AcmeAccount, AcmeEabKey
from certctl.domain.acme.eab import create_eab_key, eab_status
from certctl.domain.audit.service import record
from certctl.errors import NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["AccountOut", "AcmeAdminController", "EabKeyCreated", "EabKeyIn", "EabKeyOut"]

_ADMIN = {"permission": "acme.admin"}


class EabKeyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new EAB key: for one profile (or every profile), with an optional lifetime."""

    profile_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=255)] = ""
    expires_in_seconds: Annotated[int, msgspec.Meta(ge=60, le=5 * 366 * 86400)] | None = None
    """Until when the key may bind an account; an account already bound stays valid."""


class EabKeyCreated(msgspec.Struct, kw_only=True):
    """The one response that carries the HMAC (base64url, no padding)."""

    id: str
    hmac_key: str
    profile_id: str | None
    name: str
    created_at: datetime
    expires_at: datetime | None


class EabKeyOut(msgspec.Struct, kw_only=True):
    """A key as listed: never its HMAC."""

    id: str
    name: str
    profile_id: str | None
    status: str
    """``unused``, ``bound``, ``revoked`` or ``expired``."""
    account_id: str | None
    created_at: datetime
    expires_at: datetime | None
    bound_at: datetime | None


class AccountOut(msgspec.Struct, kw_only=True):
    """An ACME account as the operator sees it."""

    id: str
    profile_id: str
    status: str
    contact: list[str]
    eab_key_id: str | None
    thumbprint: str
    created_at: datetime


def _key_out(row: AcmeEabKey, now: datetime) -> EabKeyOut:
    return EabKeyOut(
        id=row.id,
        name=row.name,
        profile_id=row.profile_id,
        status=eab_status(row, now),
        account_id=row.account_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        bound_at=row.bound_at,
    )


def _account_out(row: AcmeAccount) -> AccountOut:
    return AccountOut(
        id=row.id,
        profile_id=row.profile_id,
        status=row.status,
        contact=list(row.contact),
        eab_key_id=row.eab_key_id,
        thumbprint=row.thumbprint,
        created_at=row.created_at,
    )


class AcmeAdminController(Controller):
    """``/api/v1/acme``: EAB keys and ACME accounts."""

    path = "/api/v1/acme"
    tags = ["ACME"]

    @post("/eab-keys", opt=_ADMIN, status_code=201)
    async def create_key(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[EabKeyIn | None] = None,
    ) -> EabKeyCreated:
        """Mint a key; its HMAC is in this response only (what ``--eab-hmac-key`` takes)."""
        data = data or EabKeyIn()
        expires_at = (
            utcnow() + timedelta(seconds=data.expires_in_seconds)
            if data.expires_in_seconds is not None
            else None
        )
        row, hmac_key = await create_eab_key(
            session,
            runtime,
            profile_id=data.profile_id,
            name=data.name,
            expires_at=expires_at,
            actor=actor,
        )
        await session.commit()
        return EabKeyCreated(
            id=row.id,
            hmac_key=base64.urlsafe_b64encode(hmac_key).rstrip(b"=").decode("ascii"),
            profile_id=row.profile_id,
            name=row.name,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    @get("/eab-keys", opt=_ADMIN)
    async def list_keys(self, session: SessionDep) -> list[EabKeyOut]:
        """Every key with its status; the HMAC is never shown again."""
        now = utcnow()
        rows = await session.scalars(select(AcmeEabKey).order_by(AcmeEabKey.created_at))
        return [_key_out(row, now) for row in rows]

    @delete("/eab-keys/{key_id:str}", opt=_ADMIN, status_code=204)
    async def revoke_key(self, session: SessionDep, actor: ActorDep, key_id: FromPath[str]) -> None:
        """Revoke a key so it binds no account from now on.

        An account the key already bound stays valid: revoke that account separately
        (``POST /api/v1/acme/accounts/{account_id}/revoke``). Revoking twice is a no-op.
        """
        row = await session.get(AcmeEabKey, key_id)
        if row is None:
            raise NotFound(f"EAB key {key_id!r} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            record(
                session,
                actor,
                "acme.eab.revoke",
                resource_type="acme_eab_key",
                resource_id=row.id,
                category="auth",
                details={"name": row.name, "account_id": row.account_id},
            )
            await session.commit()

    @get("/accounts", opt=_ADMIN)
    async def list_accounts(
        self, session: SessionDep, profile_id: FromQuery[str | None] = None
    ) -> list[AccountOut]:
        """ACME accounts, optionally of one profile's directory."""
        query = select(AcmeAccount).order_by(AcmeAccount.created_at)
        if profile_id is not None:
            query = query.where(AcmeAccount.profile_id == profile_id)
        return [_account_out(row) for row in await session.scalars(query)]

    @post("/accounts/{account_id:str}/revoke", opt=_ADMIN, status_code=200)
    async def revoke_account(
        self, session: SessionDep, actor: ActorDep, account_id: FromPath[str]
    ) -> AccountOut:
        """Revoke an account: every later request it signs is refused (``unauthorized``).

        Certificates it obtained stay valid; revoke them through the certificate API.
        """
        row = await session.get(AcmeAccount, account_id)
        if row is None:
            raise NotFound(f"ACME account {account_id!r} not found")
        if row.status != "revoked":
            previous = row.status
            row.status = "revoked"
            row.updated_at = utcnow()
            record(
                session,
                actor,
                "acme.account.revoke",
                resource_type="acme_account",
                resource_id=row.id,
                category="auth",
                details={"profile_id": row.profile_id, "previous_status": previous},
            )
            await session.commit()
        return _account_out(row)
