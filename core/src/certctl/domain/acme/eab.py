"""External Account Binding keys (RFC 8555 §7.3.4): operator-issued MAC keys that admit one
ACME account each.

The operator creates a key (``POST /api/v1/acme/eab-keys``) and hands its id and HMAC to the
client (``lego --eab --kid … --hmac …``, ``certbot --eab-kid … --eab-hmac-key …``). The HMAC is
32 random bytes, stored only encrypted (context ``acme-eab:<id>``) and shown once. At
new-account the protocol controller calls :func:`eab_hmac` to check the binding's MAC and then
:func:`bind_eab_key` in the account's transaction: the conditional ``UPDATE`` lets exactly one
account claim a key even if two registrations race on different replicas.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import AcmeEabKey, CertificateProfile
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.errors import BadRequest

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["HMAC_BYTES", "bind_eab_key", "create_eab_key", "eab_context", "eab_hmac", "eab_status"]

HMAC_BYTES = 32
"""256-bit keys: the HS256 key length RFC 7518 §3.2 asks for."""


def eab_context(key_id: str) -> str:
    """The encryption context of a key's HMAC (a blob moved to another row fails to decrypt)."""
    return f"acme-eab:{key_id}"


def eab_status(key: AcmeEabKey, now: datetime | None = None) -> str:
    """``revoked``, ``bound``, ``expired`` or ``unused`` (expiry only matters before binding)."""
    if key.revoked_at is not None:
        return "revoked"
    if key.account_id is not None:
        return "bound"
    if key.expires_at is not None and key.expires_at <= (now or utcnow()):
        return "expired"
    return "unused"


async def create_eab_key(
    session: AsyncSession,
    runtime: Runtime,
    *,
    profile_id: str | None,
    name: str,
    expires_at: datetime | None,
    actor: Actor,
) -> tuple[AcmeEabKey, bytes]:
    """Stage a new key and its audit row; returns the row and the plaintext HMAC.

    ``profile_id`` None: the key works under every profile's directory. The caller commits
    (and shows the HMAC to the operator, once). An unknown profile is a ``BadRequest``.
    """
    if profile_id is not None and await session.get(CertificateProfile, profile_id) is None:
        raise BadRequest(f"profile {profile_id!r} not found")
    if expires_at is not None and expires_at <= utcnow():
        raise BadRequest("expires_at must be in the future")
    key_id = new_id("eab")
    hmac_key = secrets.token_bytes(HMAC_BYTES)
    row = AcmeEabKey(
        id=key_id,
        profile_id=profile_id,
        name=name,
        hmac_enc=runtime.box.encrypt(hmac_key, eab_context(key_id)),
        created_by=actor.name,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    record(
        session,
        actor,
        "acme.eab.create",
        resource_type="acme_eab_key",
        resource_id=key_id,
        category="auth",
        details={
            "name": name,
            "profile_id": profile_id,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row, hmac_key


async def eab_hmac(session: AsyncSession, runtime: Runtime, kid: str, *, profile_id: str) -> bytes:
    """The HMAC of a key a new account under ``profile_id`` may still bind.

    Every refusal is the same ``unauthorized`` problem kind so the answer does not tell a
    client which key ids exist; the detail says why for the operator reading the client log.
    """
    key = await session.get(AcmeEabKey, kid) if len(kid) <= 40 else None
    if key is None:
        raise AcmeProblem("unauthorized", "unknown externalAccountBinding key")
    if key.profile_id is not None and key.profile_id != profile_id:
        raise AcmeProblem("unauthorized", "this externalAccountBinding key is for another profile")
    status = eab_status(key)
    if status != "unused":
        detail = "already used" if status == "bound" else status
        raise AcmeProblem("unauthorized", f"externalAccountBinding key {detail}")
    return runtime.box.decrypt(key.hmac_enc, eab_context(key.id))


async def bind_eab_key(session: AsyncSession, kid: str, account_id: str) -> None:
    """Claim ``kid`` for ``account_id`` in the caller's transaction (the caller commits).

    One conditional ``UPDATE``: of two registrations racing for one key, the second finds no
    row left to claim and gets ``unauthorized``, and its transaction must roll back.
    """
    now = utcnow()
    statement = (
        update(AcmeEabKey)
        .where(
            AcmeEabKey.id == kid,
            AcmeEabKey.account_id.is_(None),
            AcmeEabKey.revoked_at.is_(None),
            or_(AcmeEabKey.expires_at.is_(None), AcmeEabKey.expires_at > now),
        )
        .values(account_id=account_id, bound_at=now)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    if result.rowcount != 1:
        raise AcmeProblem("unauthorized", "externalAccountBinding key already used")
