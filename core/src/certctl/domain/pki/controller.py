"""``GET /.well-known/pki/ca/{issuer_id}``: the issuing CA certificate (AIA caIssuers).

Issued certificates name this URL in their Authority Information Access extension (RFC 5280
§4.2.2.1) so that clients missing an intermediate can fetch it. It serves one DER certificate
(``application/pkix-cert``), as the RFC expects of an HTTP caIssuers URI.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from litestar import Controller, Request, Response, get
from litestar.params import FromPath
from sqlalchemy import select

from certctl.db.models import ConnectorInstance
from certctl.errors import NotFound, ServiceUnavailable
from certctl.lib.deps import RuntimeDep
from certctl_sdk import ConnectorError, Issuer, IssuerCapability
from certctl_sdk.pem import load_certificate

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["CaCertificateController", "ca_certificate_der"]

CERT_MEDIA_TYPE = "application/pkix-cert"
MAX_AGE_SECONDS = 3600


async def ca_certificate_der(runtime: Runtime, issuer_id: str) -> bytes:
    """The DER of the certificate that signs ``issuer_id``'s leaves; 404 when it has none."""
    async with runtime.sessions() as session:
        row = await session.scalar(
            select(ConnectorInstance).where(
                ConnectorInstance.id == issuer_id, ConnectorInstance.family == "issuer"
            )
        )
    if row is None or not row.enabled:
        raise NotFound(f"no CA certificate is published for issuer {issuer_id!r}")
    try:
        issuer = runtime.connectors.instance(row)
    except Exception:  # noqa: BLE001 - e.g. its plugin is not installed
        raise NotFound(f"no CA certificate is published for issuer {issuer_id!r}") from None
    if (
        not isinstance(issuer, Issuer)
        or IssuerCapability.CA_CERTIFICATES not in issuer.capabilities
    ):
        raise NotFound(f"issuer {issuer_id!r} does not publish its CA certificate")
    try:
        chain = await issuer.ca_certificates()
    except ConnectorError as exc:
        raise ServiceUnavailable(f"the issuer's CA chain is unavailable: {exc.message}") from None
    if not chain:
        raise NotFound(f"issuer {issuer_id!r} has no CA certificate")
    return load_certificate(chain[0]).public_bytes(serialization.Encoding.DER)


class CaCertificateController(Controller):
    """Issuing CA certificates for AIA caIssuers (public, like the CRL)."""

    path = "/.well-known/pki/ca"
    tags = ["PKI"]

    @get("/{issuer_id:str}", opt={"public": True})
    async def ca_certificate(
        self, runtime: RuntimeDep, request: Request[Any, Any, Any], issuer_id: FromPath[str]
    ) -> Response[bytes]:
        """The issuing CA certificate in DER, with an ETag (``If-None-Match`` → 304)."""
        der = await ca_certificate_der(runtime, issuer_id)
        etag = '"' + hashlib.sha256(der).hexdigest() + '"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE_SECONDS}"}
        if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
            return Response(content=b"", status_code=304, headers=headers)
        return Response(content=der, media_type=CERT_MEDIA_TYPE, headers=headers)
