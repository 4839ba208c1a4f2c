"""Issuers: connectors that turn a CSR into a signed certificate.

Every issuer implements :meth:`Issuer.issue`. Optional operations are declared as
:class:`IssuerCapability` members in ``capabilities``; the core checks them before calling, and
the default implementations raise :class:`~certctl_sdk.errors.UnsupportedOperation`.
"""

from __future__ import annotations

import abc
import enum
from datetime import datetime
from typing import ClassVar, TypeVar

import msgspec

from certctl_sdk.authority import SigningAuthority
from certctl_sdk.config import ConnectorConfig
from certctl_sdk.connector import Connector
from certctl_sdk.errors import UnsupportedOperation
from certctl_sdk.models import CertificateBundle, RevocationReason, SubjectAltNames

__all__ = [
    "CrlEntry",
    "CrlRequest",
    "IssueRequest",
    "IssueResult",
    "IssuedCertificate",
    "Issuer",
    "IssuerCapability",
    "PendingIssuance",
    "RenewalWindow",
    "RevokeRequest",
    "SubordinateRequest",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class IssuerCapability(enum.StrEnum):
    """Optional operations an issuer supports."""

    REVOKE = "revoke"
    """:meth:`Issuer.revoke` asks the CA to revoke."""
    CRL_SIGNING = "crl_signing"
    """:meth:`Issuer.sign_crl`: we hold the CA key and the core publishes the CRL."""
    OCSP_SIGNING = "ocsp_signing"
    """The issuer can issue a delegated OCSP responder certificate (``ocsp_no_check`` requests)."""
    CA_CERTIFICATES = "ca_certificates"
    """:meth:`Issuer.ca_certificates` returns the issuing chain (for AIA, EST cacerts, CRLs)."""
    ASYNC_ORDER = "async_order"
    """:meth:`Issuer.issue` may return :class:`PendingIssuance`; the core calls :meth:`poll`."""
    RENEWAL_INFO = "renewal_info"
    """:meth:`Issuer.renewal_info` suggests a renewal window (ACME ARI, RFC 9773)."""
    SUBORDINATE_CA = "subordinate_ca"
    """:meth:`Issuer.sign_subordinate` signs CA certificates, and the issuer signs with the CA
    that ``ConnectorContext.authority`` names (the core's CA hierarchy)."""


class IssueRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Sign this CSR. The core has already applied the profile's policy to every field."""

    csr_pem: str
    common_name: str
    sans: SubjectAltNames
    validity_seconds: int
    """Requested lifetime; the issuer may shorten it (CA expiry) but never lengthen it."""
    ekus: tuple[str, ...] = ("serverAuth",)
    must_staple: bool = False
    ocsp_no_check: bool = False
    """Add id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), for delegated responder certificates."""
    is_ca: bool = False
    ocsp_urls: tuple[str, ...] = ()
    ca_issuer_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    idempotency_key: str = ""
    """Stable across retries of the same order: issuers whose CA accepts one should pass it.

    The core stores each order (key, CSR, ``requested_at``) before the first call, so a retry
    after a crash — even one between the CA signing and the core storing — sends the *same*
    request with the same key. An issuer that honours the key returns the certificate it already
    signed instead of a second one (the Local CA does so by deriving the certificate from the
    request; a remote CA by its own idempotency header or order lookup)."""
    requested_at: datetime | None = None
    """When the core placed the order (unchanged on retries); issuers that compute validity
    themselves may count from it so that a retried order yields the same certificate."""
    profile_id: str | None = None
    certificate_id: str | None = None


class IssuedCertificate(CertificateBundle, frozen=True, kw_only=True):
    """A signed certificate; ``chain_pem`` holds intermediates (and the root if the CA sends it)."""


class PendingIssuance(msgspec.Struct, frozen=True, kw_only=True):
    """The CA accepted the order but has not signed yet (ASYNC_ORDER issuers only)."""

    order_id: str
    retry_after_seconds: float = 60.0
    message: str = ""


IssueResult = IssuedCertificate | PendingIssuance


class RevokeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Revoke one certificate issued by this issuer."""

    serial: str
    certificate_pem: str
    reason: RevocationReason = RevocationReason.UNSPECIFIED
    revoked_at: datetime | None = None


class CrlEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One revoked certificate on a CRL."""

    serial: str
    revoked_at: datetime
    reason: RevocationReason = RevocationReason.UNSPECIFIED


class CrlRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Sign a complete CRL: the core owns revocation state and the monotonic CRL number."""

    crl_number: int
    this_update: datetime
    next_update: datetime
    entries: tuple[CrlEntry, ...] = ()


class SubordinateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Sign a CA certificate for ``public_key_pem``. The core has checked RFC 5280's rules.

    Subject attributes are lists, in RDN order country → organisation → unit → locality →
    province → common name; DNS name constraints become a critical nameConstraints extension.
    """

    public_key_pem: str
    common_name: str
    organization: tuple[str, ...] = ()
    organizational_unit: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    locality: tuple[str, ...] = ()
    province: tuple[str, ...] = ()
    not_before: datetime
    not_after: datetime
    path_length: int | None = None
    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    ocsp_urls: tuple[str, ...] = ()


class RenewalWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A suggested renewal window (RFC 9773)."""

    start: datetime
    end: datetime
    explanation_url: str | None = None


class Issuer(Connector[ConfigT], abc.ABC):
    """Base class of issuers."""

    family: ClassVar[str] = "issuer"
    capabilities: ClassVar[frozenset[IssuerCapability]] = frozenset()

    @abc.abstractmethod
    async def issue(self, request: IssueRequest) -> IssueResult:
        """Sign ``request.csr_pem``; raise RejectedError when the CA refuses it."""

    async def poll(self, order_id: str) -> IssueResult:
        """Check an order returned as :class:`PendingIssuance` (ASYNC_ORDER)."""
        raise UnsupportedOperation(f"{self.kind} issuers do not take asynchronous orders")

    async def revoke(self, request: RevokeRequest) -> None:
        """Ask the CA to revoke (REVOKE)."""
        raise UnsupportedOperation(f"{self.kind} issuers cannot revoke")

    async def sign_crl(self, request: CrlRequest) -> bytes:
        """Return a DER CRL signed by the CA key (CRL_SIGNING)."""
        raise UnsupportedOperation(f"{self.kind} issuers cannot sign CRLs")

    async def ca_certificates(self) -> tuple[str, ...]:
        """The issuing CA first, then up to the root, as PEM (CA_CERTIFICATES)."""
        raise UnsupportedOperation(f"{self.kind} issuers do not publish their CA chain")

    async def sign_subordinate(
        self, request: SubordinateRequest, parent: SigningAuthority | None
    ) -> str:
        """A PEM CA certificate signed by ``parent``, or by the issuer's own CA (SUBORDINATE_CA)."""
        raise UnsupportedOperation(f"{self.kind} issuers cannot sign CA certificates")

    async def renewal_info(self, certificate_pem: str) -> RenewalWindow:
        """Suggested renewal window for a certificate (RENEWAL_INFO)."""
        raise UnsupportedOperation(f"{self.kind} issuers do not give renewal information")
