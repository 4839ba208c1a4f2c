"""OpenID Connect Back-Channel Logout 1.0: the IdP ends sessions it started.

The token names its issuer; the providers with that issuer (and the token's audience) try to
verify it with their own keys and rules (:meth:`SsoProvider.verify_logout_token`). A verified
token's ``jti`` is inserted into ``oidc_logout_jtis`` in the same transaction as the
revocation, so a replayed token is refused (400) and never revokes twice; rows are swept by the
session GC loop once the token could no longer be fresh.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from certctl.db.engine import dialect_insert
from certctl.db.models import ConnectorInstance, OidcLogoutJti
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.sessions.service import revoke_sessions
from certctl.domain.sso.providers import enabled_providers, provider_row, sso_instance
from certctl.errors import BadRequest, ServiceUnavailable
from certctl_sdk import TransientError
from certctl_sdk.auth import InvalidTokenError, LogoutClaims

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["back_channel_logout"]


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload, read only to route the token to a provider (verified right after)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise BadRequest("logout_token is not a JWT") from None
    if not isinstance(claims, dict):
        raise BadRequest("logout_token is not a JWT")
    return claims


async def _candidates(
    runtime: Runtime, provider_id: str | None, claims: dict[str, Any]
) -> list[ConnectorInstance]:
    async with runtime.sessions() as db:
        if provider_id:
            return [await provider_row(runtime, db, provider_id, enabled_only=True)]
        rows = await enabled_providers(runtime, db)
    aud = claims.get("aud")
    audiences = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    return [
        row
        for row in rows
        if sso_instance(runtime, row).issuer == claims.get("iss")
        and sso_instance(runtime, row).config.client_id in audiences
    ]


async def back_channel_logout(runtime: Runtime, token: str, *, provider_id: str | None) -> int:
    """Verify ``token``, record its ``jti`` and revoke the sessions it names; how many ended."""
    rows = await _candidates(runtime, provider_id, _unverified_claims(token))
    if not rows:
        raise BadRequest("logout_token: no enabled provider has this issuer and audience")
    max_age = runtime.settings.oidc_bcl_max_age_seconds
    verified: tuple[ConnectorInstance, LogoutClaims] | None = None
    refusal = "logout_token could not be verified"
    for row in rows:
        try:
            claims = await sso_instance(runtime, row).verify_logout_token(
                token, max_age_seconds=max_age
            )
        except InvalidTokenError as exc:
            refusal = f"invalid logout_token: {exc.message}"
            continue
        except TransientError as exc:
            raise ServiceUnavailable(f"logout_token cannot be checked now: {exc.message}") from None
        verified = (row, claims)
        break
    if verified is None:
        raise BadRequest(refusal)
    row, claims = verified
    async with runtime.sessions() as db:
        fresh = await db.execute(
            dialect_insert(db)(OidcLogoutJti)
            .values(
                provider_id=row.id,
                jti=claims.jti,
                expires_at=claims.iat + timedelta(seconds=max_age + 60),
            )
            .on_conflict_do_nothing()
        )
        if not getattr(fresh, "rowcount", 0):
            raise BadRequest("logout_token was already used (jti replay)")
        ended = await revoke_sessions(
            db,
            provider_id=row.id,
            idp_sid=claims.sid,
            idp_sub=claims.subject,
            reason="back-channel logout",
        )
        record(
            db,
            Actor(name=f"idp:{row.id}", type="System"),
            "auth.oidc.back_channel_logout",
            resource_type="sso_provider",
            resource_id=row.id,
            category="auth",
            details={"sessions_ended": ended, "by": "sid" if claims.sid else "sub"},
        )
        await db.commit()
    if ended:
        runtime.auth_generation.invalidate()
    return ended
