"""An example issuer for a CA that signs CSRs over a small JSON API (see writing-plugins.md).

``POST {url}/sign`` with ``{"csr": <PEM>, "days": <int>}`` and a bearer token answers
``{"certificate": <PEM>, "chain": [<PEM>, ...]}``; 429 and 5xx mean "try again later".
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import httpx
from msgspec import Meta

from certctl_sdk import (
    AuthenticationError,
    ConnectorConfig,
    IssuedCertificate,
    Issuer,
    IssueRequest,
    IssueResult,
    RejectedError,
    Secret,
    TransientError,
    hookimpl,
)
from certctl_sdk.pem import bundle_from_pem


class SigningServiceConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the signing service lives and how to authenticate."""

    url: Annotated[str, Meta(pattern=r"^https://", description="Base URL of the signing API.")]
    token: Annotated[Secret, Meta(description="Bearer token; stored encrypted, never shown.")]


class SigningServiceIssuer(Issuer[SigningServiceConfig]):
    """Sends the CSR to the service and returns what it signed."""

    kind: ClassVar[str] = "signing-service"
    display_name: ClassVar[str] = "Example signing service"
    Config: ClassVar[type[ConnectorConfig]] = SigningServiceConfig

    async def issue(self, request: IssueRequest) -> IssueResult:
        token = await self.context.secrets.resolve(self.config.token)
        try:
            response = await self.context.http.post(
                f"{self.config.url}/sign",
                json={"csr": request.csr_pem, "days": max(1, request.validity_seconds // 86400)},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": request.idempotency_key,
                },
            )
        except httpx.TransportError as exc:
            raise TransientError(f"signing service unreachable: {type(exc).__name__}") from None
        if response.status_code == 401:
            raise AuthenticationError("the signing service refused the token")
        if response.status_code == 429 or response.status_code >= 500:
            retry = response.headers.get("Retry-After")
            raise TransientError(
                f"signing service answered {response.status_code}",
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
        if response.status_code != 200:
            raise RejectedError(f"signing service refused the request ({response.status_code})")
        body = response.json()
        bundle = bundle_from_pem(body["certificate"], tuple(body.get("chain", ())))
        return IssuedCertificate(**{f: getattr(bundle, f) for f in bundle.__struct_fields__})


@hookimpl
def register_issuers() -> list[type[Issuer[SigningServiceConfig]]]:
    """The entry point (group ``certctl``) names this module."""
    return [SigningServiceIssuer]
