"""The checks every signed ACME request passes before a handler sees it (RFC 8555 §6).

Order matters and follows the RFC: content type, JWS syntax and algorithm, the protected
``url`` against the URL requested, the nonce (consumed once on any replica), the key
(``jwk`` only where the RFC allows it, else ``kid`` naming a valid account of this profile),
then the signature. Only then is the payload read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.models import AcmeAccount
from certctl.domain.acme.directory import Directory
from certctl.domain.acme.jws import ParsedJws, parse_jws, verify_signature
from certctl.domain.acme.nonces import consume_nonce
from certctl.domain.acme.problems import AcmeProblem

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["JOSE_MEDIA_TYPE", "Signed", "verify_request"]

JOSE_MEDIA_TYPE = "application/jose+json"


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified request: its JWS, and the account its ``kid`` names (None for ``jwk``)."""

    jws: ParsedJws
    account: AcmeAccount | None

    def payload(self) -> dict[str, Any]:
        """The JSON object payload; malformed for POST-as-GET where a body is needed."""
        body = self.jws.json()
        if body is None:
            raise AcmeProblem("malformed", "this request needs a JSON object payload")
        return body

    def require_account(self) -> AcmeAccount:
        assert self.account is not None, "verify_request(key='kid') guarantees an account"
        return self.account


async def verify_request(
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    *,
    url: str,
    content_type: str,
    body: bytes,
    key: str,
) -> Signed:
    """Check one POST; ``key`` is ``"kid"``, ``"jwk"`` or ``"either"`` (revoke-cert)."""
    if content_type.split(";", 1)[0].strip().lower() != JOSE_MEDIA_TYPE:
        raise AcmeProblem("malformed", f"Content-Type must be {JOSE_MEDIA_TYPE}", status=415)
    jws = parse_jws(body)
    if jws.url != url:
        raise AcmeProblem("unauthorized", f"the JWS url {jws.url!r} is not the URL requested")
    if not jws.nonce:
        raise AcmeProblem("badNonce", "the JWS carries no nonce")
    if not await consume_nonce(runtime, jws.nonce):
        raise AcmeProblem("badNonce", "the nonce is unknown, expired or already used")
    account: AcmeAccount | None = None
    if jws.jwk is not None:
        if key == "kid":
            raise AcmeProblem("malformed", "this request must be signed with the account's kid")
        verify_signature(jws, jws.jwk)
        return Signed(jws=jws, account=None)
    if key == "jwk":
        raise AcmeProblem("malformed", "this request must carry the account key as jwk")
    account_id = directory.account_id_of(jws.kid or "")
    account = await session.get(AcmeAccount, account_id) if account_id else None
    if account is None or account.profile_id != directory.profile.id:
        raise AcmeProblem("accountDoesNotExist", "the kid names no account of this directory")
    if account.status != "valid":
        raise AcmeProblem("unauthorized", f"the account is {account.status}")
    verify_signature(jws, account.jwk)
    return Signed(jws=jws, account=account)
