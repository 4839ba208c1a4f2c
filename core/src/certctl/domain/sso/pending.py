"""Logins in flight: created by ``/auth/oidc/login``, consumed once by the callback.

The browser holds a random binding token in the ``__Host-certctl_oidc_pending`` cookie; the
row holds its SHA-256, the SHA-256 of ``state``, and the PKCE verifier and nonce encrypted.
The callback deletes the row in one ``DELETE … RETURNING`` committed before anything else
happens, so a state can be used once even by two racing requests on two replicas, and a
callback that fails later cannot bring it back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import OidcPendingLogin
from certctl.errors import BadRequest
from certctl_sdk.auth import new_pkce_verifier

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "PENDING_COOKIE",
    "PENDING_TTL",
    "ConsumedLogin",
    "NewLogin",
    "consume_pending",
    "create_pending",
    "safe_redirect",
    "sha256_hex",
]

PENDING_COOKIE = "__Host-certctl_oidc_pending"
PENDING_TTL = timedelta(minutes=10)
_REDIRECT = re.compile(r"^/(?![/\\])[^\x00-\x20\x7f\\]*$")


def sha256_hex(value: str) -> str:
    """Hex SHA-256 (state, binding token and User-Agent are stored only this way)."""
    return hashlib.sha256(value.encode()).hexdigest()


def safe_redirect(value: str | None) -> str:
    """Where to land after login: a same-origin path (``/…``), never a URL elsewhere.

    ``//evil.example``, ``/\\evil.example``, schemes, whitespace and control characters are
    refused (400), because browsers read several of them as another host.
    """
    if not value:
        return "/"
    parts = urlsplit(value)
    if len(value) > 2048 or parts.scheme or parts.netloc or not _REDIRECT.match(value):
        raise BadRequest("redirect_to must be a path on this server, starting with a single /")
    return value


class NewLogin(NamedTuple):
    """What the login endpoint hands to the IdP and to the browser."""

    state: str
    nonce: str
    verifier: str
    binding: str


class ConsumedLogin(NamedTuple):
    """A pre-login row just deleted by its callback."""

    id: str
    provider_id: str
    binding_hash: str
    verifier: str
    nonce: str
    redirect_after: str
    user_agent_hash: str | None
    client_ip: str | None
    expires_at: datetime


def _context(row_id: str) -> str:
    return f"oidc-pending:{row_id}"


def create_pending(
    runtime: Runtime,
    session: AsyncSession,
    *,
    provider_id: str,
    redirect_after: str,
    user_agent: str | None,
    client_ip: str | None,
) -> NewLogin:
    """Add a pre-login row to ``session`` (the caller commits)."""
    login = NewLogin(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=new_pkce_verifier(),
        binding=secrets.token_urlsafe(32),
    )
    row_id = new_id("opl")
    blob = json.dumps({"verifier": login.verifier, "nonce": login.nonce}).encode()
    now = utcnow()
    session.add(
        OidcPendingLogin(
            id=row_id,
            state_hash=sha256_hex(login.state),
            binding_hash=sha256_hex(login.binding),
            provider_id=provider_id,
            secrets_enc=runtime.box.encrypt(blob, _context(row_id)),
            redirect_after=redirect_after,
            user_agent_hash=None if user_agent is None else sha256_hex(user_agent),
            client_ip=client_ip,
            created_at=now,
            expires_at=now + PENDING_TTL,
        )
    )
    return login


async def consume_pending(runtime: Runtime, state: str) -> ConsumedLogin | None:
    """Delete the row of ``state`` and return it; None when there is none (used or unknown).

    Runs in its own committed transaction: consumption is final whatever the callback does next.
    """
    table = OidcPendingLogin
    async with runtime.sessions.begin() as session:
        found = (
            await session.execute(
                delete(table)
                .where(table.state_hash == sha256_hex(state))
                .returning(
                    table.id,
                    table.provider_id,
                    table.binding_hash,
                    table.secrets_enc,
                    table.redirect_after,
                    table.user_agent_hash,
                    table.client_ip,
                    table.expires_at,
                )
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
    if found is None:
        return None
    blob = json.loads(runtime.box.decrypt(found.secrets_enc, _context(found.id)))
    return ConsumedLogin(
        id=found.id,
        provider_id=found.provider_id,
        binding_hash=found.binding_hash,
        verifier=blob["verifier"],
        nonce=blob["nonce"],
        redirect_after=found.redirect_after,
        user_agent_hash=found.user_agent_hash,
        client_ip=found.client_ip,
        expires_at=found.expires_at,
    )


def check_binding(
    consumed: ConsumedLogin,
    *,
    binding: str | None,
    user_agent: str | None,
    client_ip: str | None,
    bind_user_agent: bool,
    bind_ip: bool,
) -> None:
    """The callback must come from the browser (and, optionally, UA and address) that started."""
    if binding is None or not hmac.compare_digest(sha256_hex(binding), consumed.binding_hash):
        raise BadRequest("this login was started in another browser (pending-login cookie)")
    if consumed.expires_at <= utcnow():
        raise BadRequest("the login took longer than 10 minutes; start it again")
    if bind_user_agent and consumed.user_agent_hash is not None:
        seen = sha256_hex(user_agent or "")
        if not hmac.compare_digest(seen, consumed.user_agent_hash):
            raise BadRequest("the login was started by another User-Agent")
    if bind_ip and consumed.client_ip is not None and consumed.client_ip != client_ip:
        raise BadRequest("the login was started from another address")
