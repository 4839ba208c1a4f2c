"""Small, correct in-memory connectors, one per family, for tests of the core and the SDK.

They pass their family's contract suite, keep what they did in plain attributes for assertions
and never touch the network. They are not registered by any plugin; a test that needs one in
the registry registers it on its own plugin manager.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from certctl_sdk.auth import AuthProvider, AuthRequest, Principal
from certctl_sdk.config import ConnectorConfig, Secret
from certctl_sdk.connector import ConnectorContext
from certctl_sdk.errors import RejectedError
from certctl_sdk.issuer import (
    CrlRequest,
    IssuedCertificate,
    Issuer,
    IssuerCapability,
    IssueRequest,
    IssueResult,
    PendingIssuance,
    RenewalWindow,
    RevokeRequest,
)
from certctl_sdk.models import RevocationReason
from certctl_sdk.notifier import Notification, Notifier
from certctl_sdk.pem import PemError, load_certificate, load_csr
from certctl_sdk.scanner import DiscoveredCertificate, Scanner
from certctl_sdk.target import DeployRequest, DeployResult, Target, TargetCapability
from certctl_sdk.testing.certs import IssuedLeaf, TestCA

__all__ = [
    "FakeAsyncIssuer",
    "FakeIssuer",
    "FakeIssuerConfig",
    "MemoryNotifier",
    "MemoryNotifierConfig",
    "MemoryTarget",
    "MemoryTargetConfig",
    "StaticScanner",
    "StaticScannerConfig",
    "StaticTokenAuth",
    "StaticTokenAuthConfig",
]


class FakeIssuerConfig(ConnectorConfig, frozen=True, kw_only=True):
    """Settings of :class:`FakeIssuer`."""

    max_validity_days: Annotated[
        int, msgspec.Meta(ge=1, description="Longest lifetime the fake CA signs")
    ] = 397


class FakeIssuer(Issuer[FakeIssuerConfig]):
    """Signs CSRs with a :class:`TestCA`; revokes, signs CRLs, publishes its chain, gives ARI.

    ``issued`` and ``revoked`` (serial → reason) record what happened.
    """

    kind = "fake"
    display_name = "Fake CA (tests)"
    description = "Signs with an in-memory test CA."
    Config = FakeIssuerConfig
    capabilities: ClassVar[frozenset[IssuerCapability]] = frozenset(
        {
            IssuerCapability.REVOKE,
            IssuerCapability.CRL_SIGNING,
            IssuerCapability.CA_CERTIFICATES,
            IssuerCapability.RENEWAL_INFO,
        }
    )

    def __init__(
        self, config: FakeIssuerConfig, context: ConnectorContext, *, ca: TestCA | None = None
    ) -> None:
        super().__init__(config, context)
        self.ca = ca or TestCA.create()
        self.issued: list[IssuedCertificate] = []
        self.revoked: dict[str, RevocationReason] = {}

    def _sign(self, request: IssueRequest) -> IssuedCertificate:
        try:
            load_csr(request.csr_pem)
        except PemError as exc:
            raise RejectedError(f"the CSR was refused: {exc}") from None
        validity = min(
            timedelta(seconds=request.validity_seconds),
            timedelta(days=self.config.max_validity_days),
        )
        leaf: IssuedLeaf = self.ca.sign_csr(
            request.csr_pem,
            common_name=request.common_name,
            sans=request.sans,
            validity=validity,
            now=self.context.clock(),
        )
        issued = IssuedCertificate(
            certificate_pem=leaf.certificate_pem,
            chain_pem=leaf.chain_pem,
            serial=leaf.serial,
            not_before=leaf.not_before,
            not_after=leaf.not_after,
            fingerprint_sha256=leaf.fingerprint_sha256,
        )
        self.issued.append(issued)
        return issued

    async def issue(self, request: IssueRequest) -> IssueResult:
        """Sign at once."""
        return self._sign(request)

    async def revoke(self, request: RevokeRequest) -> None:
        """Record the revocation."""
        self.revoked[request.serial] = request.reason

    async def sign_crl(self, request: CrlRequest) -> bytes:
        """A DER CRL signed by the test CA."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.certificate.subject)
            .last_update(request.this_update)
            .next_update(request.next_update)
            .add_extension(x509.CRLNumber(request.crl_number), critical=False)
        )
        for entry in request.entries:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry.serial, 16))
                .revocation_date(entry.revoked_at)
            )
            if entry.reason is not RevocationReason.UNSPECIFIED:
                flag = x509.ReasonFlags[entry.reason.name.lower()]
                revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        key = self.ca.private_key
        algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)

    async def ca_certificates(self) -> tuple[str, ...]:
        """The test CA (a root, so the chain is one certificate)."""
        return (self.ca.certificate_pem,)

    async def renewal_info(self, certificate_pem: str) -> RenewalWindow:
        """The middle third of the lifetime, like Let's Encrypt's ARI suggests."""
        cert = load_certificate(certificate_pem)
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        third = (end - start) / 3
        return RenewalWindow(start=start + third, end=end - third)


class FakeAsyncIssuer(FakeIssuer):
    """Like :class:`FakeIssuer` but answers PendingIssuance first and signs on the first poll."""

    kind = "fake-async"
    display_name = "Fake asynchronous CA (tests)"
    capabilities = FakeIssuer.capabilities | {IssuerCapability.ASYNC_ORDER}

    def __init__(
        self, config: FakeIssuerConfig, context: ConnectorContext, *, ca: TestCA | None = None
    ) -> None:
        super().__init__(config, context, ca=ca)
        self.orders: dict[str, IssueRequest] = {}

    async def issue(self, request: IssueRequest) -> IssueResult:
        """Queue the order."""
        order_id = f"order-{len(self.orders) + 1}"
        self.orders[order_id] = request
        return PendingIssuance(order_id=order_id, retry_after_seconds=0.0, message="queued")

    async def poll(self, order_id: str) -> IssueResult:
        """Sign the queued order."""
        try:
            request = self.orders.pop(order_id)
        except KeyError:
            raise RejectedError(f"unknown order {order_id}") from None
        return self._sign(request)


class MemoryTargetConfig(ConnectorConfig, frozen=True, kw_only=True):
    """Settings of :class:`MemoryTarget`."""

    name: Annotated[str, msgspec.Meta(description="A label for the fake endpoint")] = "memory"


class MemoryTarget(Target[MemoryTargetConfig]):
    """Keeps the deployed certificate per certificate id; ``deployed`` maps id → fingerprint."""

    kind = "memory"
    display_name = "In-memory target (tests)"
    Config = MemoryTargetConfig
    capabilities: ClassVar[frozenset[TargetCapability]] = frozenset({TargetCapability.REMOVE})

    def __init__(self, config: MemoryTargetConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.deployed: dict[str, str] = {}
        self.history: list[DeployRequest] = []

    async def deploy(self, request: DeployRequest) -> DeployResult:
        """Store the fingerprint; unchanged when it is already there."""
        if self.deployed.get(request.certificate_id) == request.fingerprint_sha256:
            return DeployResult(changed=False, message="already deployed")
        self.deployed[request.certificate_id] = request.fingerprint_sha256
        self.history.append(request)
        return DeployResult(changed=True, message="deployed")

    async def remove(self, request: DeployRequest) -> DeployResult:
        """Forget the certificate."""
        changed = self.deployed.pop(request.certificate_id, None) is not None
        return DeployResult(changed=changed, message="removed" if changed else "not deployed")


class MemoryNotifierConfig(ConnectorConfig, frozen=True, kw_only=True):
    """Settings of :class:`MemoryNotifier`."""

    channel: Annotated[str, msgspec.Meta(description="A label for the fake channel")] = "memory"


class MemoryNotifier(Notifier[MemoryNotifierConfig]):
    """Appends every notification to ``sent``."""

    kind = "memory"
    display_name = "In-memory notifier (tests)"
    Config = MemoryNotifierConfig

    def __init__(self, config: MemoryNotifierConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        """Record the notification."""
        self.sent.append(notification)


class StaticTokenAuthConfig(ConnectorConfig, frozen=True, kw_only=True):
    """Settings of :class:`StaticTokenAuth`."""

    token: Annotated[Secret, msgspec.Meta(description="The one accepted bearer token")]
    subject: Annotated[str, msgspec.Meta(description="Who the token authenticates")] = "tester"


class StaticTokenAuth(AuthProvider[StaticTokenAuthConfig]):
    """Accepts ``Authorization: Bearer <token>`` for its one token; anything else is not its own."""

    kind = "static-token"
    display_name = "Static token (tests)"
    Config = StaticTokenAuthConfig

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """Constant-time comparison with the configured token."""
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        expected = await self.context.secrets.resolve(self.config.token)
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return None  # may be another provider's bearer token
        return Principal(subject=self.config.subject, provider=self.kind)


class StaticScannerConfig(ConnectorConfig, frozen=True, kw_only=True):
    """Settings of :class:`StaticScanner`."""

    certificates: Annotated[
        tuple[str, ...], msgspec.Meta(description="PEM certificates to 'discover'")
    ] = ()


class StaticScanner(Scanner[StaticScannerConfig]):
    """Yields the configured certificates as if it had found them."""

    kind = "static"
    display_name = "Static list (tests)"
    Config = StaticScannerConfig

    async def scan(self) -> AsyncIterator[DiscoveredCertificate]:
        """One DiscoveredCertificate per configured PEM, located at ``static:<index>``."""
        for index, pem in enumerate(self.config.certificates):
            yield DiscoveredCertificate(
                certificate_pem=pem,
                location=f"static:{index}",
                metadata={"found_at": datetime.now(UTC).isoformat()},
            )
