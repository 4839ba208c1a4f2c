"""Revocation routes under ``/api/v1/certificates`` and the public CRL distribution point."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from certctl.db.base import utcnow
from certctl.domain.certificates.service import get_certificate
from certctl.domain.revocation import service
from certctl.domain.revocation.schemas import REASONS, BulkRevokeIn, RevocationOut, RevokeIn
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["CrlController", "RevocationController"]

CRL_MEDIA_TYPE = "application/pkix-crl"


class RevocationController(Controller):
    """Revoking managed certificates.

    Revocation is recorded locally and published on the issuer's CRL; the certificate is *not*
    withdrawn from the targets it was deployed to unless the request asks for it.
    """

    path = "/api/v1/certificates"
    tags = ["Certificates"]

    @post("/{certificate_id:str}/revoke", opt={"permission": "cert.revoke"}, status_code=200)
    async def revoke(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        certificate_id: FromPath[str],
        data: JSONBody[RevokeIn],
    ) -> RevocationOut:
        """Revoke the current version (or ``versions: "all"``); renewal stops, jobs are cancelled.

        The issuer is asked to revoke when it can, after the local revocation is committed, and
        its CRL is re-signed. Deployed copies stay on their targets unless
        ``withdraw_from_targets`` asks for removal jobs.
        """
        cert = await get_certificate(session, certificate_id)
        planned = await service.revoke_certificates(
            session, [cert], REASONS[data.reason], data.versions, actor
        )
        if data.withdraw_from_targets:
            await service.enqueue_withdrawals(
                session, [cert], actor, max_attempts=runtime.settings.job_max_attempts
            )
        await session.commit()
        runtime.worker.wake()
        [out] = await service.finish_revocations(runtime, planned)
        return out

    @post("/bulk-revoke", opt={"permission": "cert.bulk_revoke"}, status_code=200)
    async def bulk_revoke(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[BulkRevokeIn],
    ) -> list[RevocationOut]:
        """Revoke up to 500 certificates in one transaction: every one is valid or none is revoked.

        Returns one result per certificate. Deployed copies stay on their targets unless
        ``withdraw_from_targets`` asks for removal jobs.
        """
        certs = await service.load_for_bulk(session, data.certificate_ids)
        planned = await service.revoke_certificates(
            session, certs, REASONS[data.reason], data.versions, actor
        )
        if data.withdraw_from_targets:
            await service.enqueue_withdrawals(
                session, certs, actor, max_attempts=runtime.settings.job_max_attempts
            )
        await session.commit()
        runtime.worker.wake()
        return await service.finish_revocations(runtime, planned)


def _matches(if_none_match: str, etag: str) -> bool:
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class CrlController(Controller):
    """CRL distribution points (RFC 5280 §4.2.1.13), as named in issued certificates."""

    path = "/.well-known/pki/crl"
    tags = ["PKI"]

    @get("/{issuer_id:str}", opt={"public": True})
    async def crl(
        self, runtime: RuntimeDep, request: Request[Any, Any, Any], issuer_id: FromPath[str]
    ) -> Response[bytes]:
        """The issuer's complete CRL in DER; re-signed when past half its validity.

        Public: relying parties fetch it without credentials. ``ETag`` is the quoted SHA-256
        of the DER and ``If-None-Match`` is honoured (304).
        """
        state = await service.crl_for_issuer(runtime, issuer_id)
        remaining = int((state.next_update - utcnow()).total_seconds())
        max_age = max(0, min(remaining, service.CRL_MAX_AGE_SECONDS))
        headers = {"ETag": state.etag, "Cache-Control": f"public, max-age={max_age}"}
        if _matches(request.headers.get("if-none-match", ""), state.etag):
            return Response(content=b"", status_code=304, headers=headers)
        return Response(content=state.crl_der, media_type=CRL_MEDIA_TYPE, headers=headers)
