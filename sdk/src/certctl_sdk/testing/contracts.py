"""Contract test suites every connector inherits: what certctl relies on, as tests.

Subclass the family's contract in your plugin's ``tests/test_contract.py`` under a ``Test`` name
and provide its fixtures; pytest collects the inherited tests::

    class TestAcmeContract(IssuerContract):
        @pytest.fixture
        def issuer(self, certctl_context):
            return AcmeIssuer(AcmeIssuerConfig(...), certctl_context)

        @pytest.fixture
        def issue_request(self):
            return make_issue_request("www.example.test")[0]

Fixtures each contract needs (the names are fixed):

=======================  ==============================================================
``IssuerContract``       ``issuer``, ``issue_request``
``TargetContract``       ``target``, ``deploy_request``; optionally ``redeploy_request``
``NotifierContract``     ``notifier``, ``notification``, ``delivered``
``AuthProviderContract`` ``auth_provider``, ``valid_request``, ``foreign_request``
``ScannerContract``      ``scanner``
=======================  ==============================================================

Tests of a capability the connector does not declare are skipped with that reason; tests that
undeclared capabilities raise :class:`UnsupportedOperation` always run. The suites need pytest
and pytest-asyncio (the SDK's ``testing`` extra); every async test is marked, so they run in
pytest-asyncio's strict and auto modes alike.
"""

from __future__ import annotations

import enum
import inspect
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from certctl_sdk.auth import AuthProvider, AuthRequest, Principal
from certctl_sdk.config import ConnectorConfig, config_schema
from certctl_sdk.connector import CheckResult, Connector
from certctl_sdk.errors import UnsupportedOperation
from certctl_sdk.issuer import (
    CrlEntry,
    CrlRequest,
    IssuedCertificate,
    Issuer,
    IssuerCapability,
    IssueRequest,
    PendingIssuance,
    RenewalWindow,
    RevokeRequest,
    SubordinateRequest,
)
from certctl_sdk.models import RevocationReason, SubjectAltNames
from certctl_sdk.notifier import Notification, Notifier
from certctl_sdk.pem import (
    fingerprint_sha256,
    load_certificate,
    load_certificates,
    load_csr,
    sans_of,
    serial_hex,
)
from certctl_sdk.scanner import DiscoveredCertificate, Scanner
from certctl_sdk.target import DeployRequest, DeployResult, Target, TargetCapability
from certctl_sdk.testing.certs import TestCA
from certctl_sdk.testing.requests import make_deploy_request

__all__ = [
    "AuthProviderContract",
    "IssuerContract",
    "NotifierContract",
    "ScannerContract",
    "TargetContract",
    "assert_connector_class",
]

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
VALIDITY_SLACK = timedelta(minutes=2)
"""Tolerance for ``not_after <= now + validity``: CAs round and clocks tick during a test."""
MAX_POLLS = 20
"""How often the issuer contract polls a PendingIssuance (without sleeping) before failing."""

asyncio_test = pytest.mark.asyncio


def assert_connector_class(
    cls: type[Connector[Any]], family: str, capability_type: type[enum.Enum] | None = None
) -> None:
    """Check the class attributes the core's registry relies on; fail naming the first problem."""
    name = cls.__qualname__
    assert getattr(cls, "family", None) == family, f"{name}.family must be {family!r}"
    kind = getattr(cls, "kind", None)
    assert isinstance(kind, str), f"{name}.kind must be a string"
    assert KIND_PATTERN.fullmatch(kind), f"{name}.kind {kind!r} must match {KIND_PATTERN.pattern}"
    display_name = getattr(cls, "display_name", None)
    assert isinstance(display_name, str), f"{name}.display_name must be a string"
    assert display_name.strip(), f"{name}.display_name must not be empty"
    assert isinstance(cls.description, str), f"{name}.description must be a string"
    config = getattr(cls, "Config", None)
    assert isinstance(config, type), f"{name}.Config must be a class"
    assert issubclass(config, ConnectorConfig), f"{name}.Config must subclass ConnectorConfig"
    schema = config_schema(config)
    assert isinstance(schema, dict), f"{name}.Config has no JSON Schema"
    assert schema, f"{name}.Config has an empty JSON Schema"
    msgspec.json.encode(schema)  # renders to JSON, as the API serves it
    if capability_type is not None:
        caps = getattr(cls, "capabilities", None)
        assert isinstance(caps, frozenset), f"{name}.capabilities must be a frozenset"
        for cap in caps:
            assert isinstance(cap, capability_type), (
                f"{name}.capabilities holds {cap!r}, not a {capability_type.__name__}"
            )


def _assert_instance(connector: Connector[Any]) -> None:
    assert isinstance(connector.config, type(connector).Config), (
        f"{type(connector).__qualname__} was built with a {type(connector.config).__name__}, "
        f"not its Config"
    )


async def _assert_check(connector: Connector[Any]) -> None:
    result = await connector.check()
    assert isinstance(result, CheckResult), f"check() returned {type(result).__name__}"
    assert isinstance(result.message, str)


async def _call(awaitable: Awaitable[object]) -> object:
    """Await and hand back the result, whatever the annotation says (we test the behaviour)."""
    return await awaitable


async def _assert_unsupported(label: str, call: Callable[[], Awaitable[object]]) -> str | None:
    """None when ``call`` raises UnsupportedOperation, else a description of what it did."""
    try:
        result = await call()
    except UnsupportedOperation:
        return None
    except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
        return f"{label} raised {type(exc).__name__}: {exc}"
    return f"{label} returned {result!r}"


# ---------------------------------------------------------------------------------------------
# Issuers
# ---------------------------------------------------------------------------------------------


def _normalise_sans(sans: SubjectAltNames) -> set[tuple[str, str]]:
    names = {("dns", d.lower().rstrip(".")) for d in sans.dns}
    names |= {("ip", str(ipaddress.ip_address(i))) for i in sans.ip}
    names |= {("email", e.lower()) for e in sans.email}
    names |= {("uri", u) for u in sans.uri}
    return names


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class IssuerContract:
    """What every issuer must do. Fixtures: ``issuer`` (ready instance), ``issue_request``."""

    async def issue_and_wait(self, issuer: Issuer[Any], request: IssueRequest) -> IssuedCertificate:
        """Issue, following PendingIssuance through poll() when ASYNC_ORDER is declared."""
        result = await issuer.issue(request)
        for _ in range(MAX_POLLS):
            if not isinstance(result, PendingIssuance):
                break
            assert IssuerCapability.ASYNC_ORDER in issuer.capabilities, (
                "issue() returned PendingIssuance but ASYNC_ORDER is not declared"
            )
            assert result.order_id, "PendingIssuance.order_id is empty"
            result = await issuer.poll(result.order_id)
        assert isinstance(result, IssuedCertificate), (
            f"issue() ended with {type(result).__name__}, not IssuedCertificate"
        )
        return result

    def test_class_attributes(self, issuer: Issuer[Any]) -> None:
        assert isinstance(issuer, Issuer)
        assert_connector_class(type(issuer), "issuer", IssuerCapability)
        _assert_instance(issuer)

    @asyncio_test
    async def test_check_returns_a_check_result(self, issuer: Issuer[Any]) -> None:
        await _assert_check(issuer)

    @asyncio_test
    async def test_issue_signs_the_request(
        self, issuer: Issuer[Any], issue_request: IssueRequest
    ) -> None:
        issued = await self.issue_and_wait(issuer, issue_request)
        cert = load_certificate(issued.certificate_pem)
        for pem in issued.chain_pem:
            load_certificates(pem)

        csr = load_csr(issue_request.csr_pem)
        assert _spki(cert.public_key()) == _spki(csr.public_key()), (
            "the certificate does not carry the CSR's public key"
        )
        missing = _normalise_sans(issue_request.sans) - _normalise_sans(sans_of(cert))
        assert not missing, f"the certificate lacks requested SANs: {sorted(missing)}"

        assert issued.serial == serial_hex(cert), "serial does not match the certificate"
        assert issued.fingerprint_sha256 == fingerprint_sha256(cert), "fingerprint mismatch"
        assert issued.not_before == cert.not_valid_before_utc, "not_before mismatch"
        assert issued.not_after == cert.not_valid_after_utc, "not_after mismatch"
        assert issued.not_before.tzinfo is not None, "not_before must be timezone-aware"
        assert issued.not_after.tzinfo is not None, "not_after must be timezone-aware"

        now = max(issuer.context.clock(), datetime.now(UTC))
        latest = now + timedelta(seconds=issue_request.validity_seconds) + VALIDITY_SLACK
        assert issued.not_after <= latest, (
            f"not_after {issued.not_after} exceeds the requested validity (latest {latest})"
        )

    @asyncio_test
    async def test_undeclared_capabilities_raise_unsupported(
        self, issuer: Issuer[Any], issue_request: IssueRequest
    ) -> None:
        now = datetime.now(UTC)
        sample = TestCA.create().issue(issue_request.common_name or "contract.test")
        calls: dict[IssuerCapability, Callable[[], Awaitable[object]]] = {
            IssuerCapability.REVOKE: lambda: issuer.revoke(
                RevokeRequest(serial=sample.serial, certificate_pem=sample.certificate_pem)
            ),
            IssuerCapability.CRL_SIGNING: lambda: issuer.sign_crl(
                CrlRequest(crl_number=1, this_update=now, next_update=now + timedelta(days=1))
            ),
            IssuerCapability.CA_CERTIFICATES: issuer.ca_certificates,
            IssuerCapability.ASYNC_ORDER: lambda: issuer.poll("contract-order"),
            IssuerCapability.RENEWAL_INFO: lambda: issuer.renewal_info(sample.certificate_pem),
            IssuerCapability.SUBORDINATE_CA: lambda: issuer.sign_subordinate(
                SubordinateRequest(
                    public_key_pem=sample.certificate_pem,
                    common_name="contract sub-CA",
                    not_before=now,
                    not_after=now + timedelta(days=1),
                ),
                None,
            ),
        }
        problems = [
            problem
            for cap, call in calls.items()
            if cap not in issuer.capabilities
            and (problem := await _assert_unsupported(f"{cap.value} (undeclared)", call))
        ]
        assert not problems, "; ".join(problems)

    @asyncio_test
    async def test_revoke(self, issuer: Issuer[Any], issue_request: IssueRequest) -> None:
        if IssuerCapability.REVOKE not in issuer.capabilities:
            pytest.skip("the issuer does not declare REVOKE")
        issued = await self.issue_and_wait(issuer, issue_request)
        outcome: object = await _call(
            issuer.revoke(
                RevokeRequest(
                    serial=issued.serial,
                    certificate_pem=issued.certificate_pem,
                    reason=RevocationReason.SUPERSEDED,
                    revoked_at=datetime.now(UTC),
                )
            )
        )
        assert outcome is None, f"revoke() returned {outcome!r}, expected None"

    @asyncio_test
    async def test_ca_certificates(self, issuer: Issuer[Any], issue_request: IssueRequest) -> None:
        if IssuerCapability.CA_CERTIFICATES not in issuer.capabilities:
            pytest.skip("the issuer does not declare CA_CERTIFICATES")
        chain = await issuer.ca_certificates()
        assert isinstance(chain, tuple | list), "ca_certificates() must return a sequence"
        assert chain, "ca_certificates() returned no PEM"
        cas = [load_certificate(pem) for pem in chain]
        leaf = load_certificate((await self.issue_and_wait(issuer, issue_request)).certificate_pem)
        assert leaf.issuer == cas[0].subject, "the leaf's issuer is not ca_certificates()[0]"
        leaf.verify_directly_issued_by(cas[0])

    @asyncio_test
    async def test_sign_crl(self, issuer: Issuer[Any], issue_request: IssueRequest) -> None:
        if IssuerCapability.CRL_SIGNING not in issuer.capabilities:
            pytest.skip("the issuer does not declare CRL_SIGNING")
        issued = await self.issue_and_wait(issuer, issue_request)
        now = datetime.now(UTC).replace(microsecond=0)
        request = CrlRequest(
            crl_number=7,
            this_update=now,
            next_update=now + timedelta(days=1),
            entries=(
                CrlEntry(
                    serial=issued.serial, revoked_at=now, reason=RevocationReason.KEY_COMPROMISE
                ),
            ),
        )
        der = await issuer.sign_crl(request)
        assert isinstance(der, bytes), "sign_crl() must return DER bytes"
        crl = x509.load_der_x509_crl(der)
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number == 7, f"CRL number {number}, requested 7"
        revoked = crl.get_revoked_certificate_by_serial_number(int(issued.serial, 16))
        assert revoked is not None, "the revoked serial is not on the CRL"
        if IssuerCapability.CA_CERTIFICATES in issuer.capabilities:
            ca = load_certificate((await issuer.ca_certificates())[0])
            assert crl.issuer == ca.subject, "the CRL's issuer is not ca_certificates()[0]"
            # A CA certificate's key is a signing key; anything else fails inside cryptography.
            public_key = cast("CertificateIssuerPublicKeyTypes", ca.public_key())
            assert crl.is_signature_valid(public_key), "the CRL signature does not verify"

    @asyncio_test
    async def test_renewal_info(self, issuer: Issuer[Any], issue_request: IssueRequest) -> None:
        if IssuerCapability.RENEWAL_INFO not in issuer.capabilities:
            pytest.skip("the issuer does not declare RENEWAL_INFO")
        issued = await self.issue_and_wait(issuer, issue_request)
        window = await issuer.renewal_info(issued.certificate_pem)
        assert isinstance(window, RenewalWindow)
        assert window.start <= window.end, "the renewal window ends before it starts"


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


class TargetContract:
    """What every deployment target must do.

    Fixtures: ``target`` and ``deploy_request``. ``redeploy_request`` (a different certificate
    for the same name) defaults to a fresh leaf from a new :class:`TestCA`; override it when
    your fake endpoint only accepts certain certificates.
    """

    @pytest.fixture
    def redeploy_request(self, deploy_request: DeployRequest) -> DeployRequest:
        """A different certificate (and key) for the same certificate id and name."""
        leaf = TestCA.create().issue(deploy_request.common_name)
        return make_deploy_request(
            leaf,
            certificate_id=deploy_request.certificate_id,
            common_name=deploy_request.common_name,
            with_key=deploy_request.private_key is not None,
        )

    def test_class_attributes(self, target: Target[Any]) -> None:
        assert isinstance(target, Target)
        assert_connector_class(type(target), "target", TargetCapability)
        _assert_instance(target)

    @asyncio_test
    async def test_check_returns_a_check_result(self, target: Target[Any]) -> None:
        await _assert_check(target)

    @asyncio_test
    async def test_deploy_then_redeploy_same_is_unchanged(
        self, target: Target[Any], deploy_request: DeployRequest
    ) -> None:
        first = await target.deploy(deploy_request)
        assert isinstance(first, DeployResult), f"deploy() returned {type(first).__name__}"
        assert first.changed, "the first deployment reported changed=False"
        if TargetCapability.VERIFY_TLS in target.capabilities:
            assert first.verified_serial == deploy_request.serial, (
                "VERIFY_TLS is declared but verified_serial is not the deployed serial"
            )
        second = await target.deploy(deploy_request)
        assert isinstance(second, DeployResult)
        assert not second.changed, "deploying the same certificate again reported changed=True"

    @asyncio_test
    async def test_deploy_a_different_certificate_changes(
        self,
        target: Target[Any],
        deploy_request: DeployRequest,
        redeploy_request: DeployRequest,
    ) -> None:
        assert redeploy_request.fingerprint_sha256 != deploy_request.fingerprint_sha256, (
            "redeploy_request must carry a different certificate"
        )
        first = await target.deploy(deploy_request)
        assert first.changed, "the first deployment reported changed=False"
        result = await target.deploy(redeploy_request)
        assert result.changed, "deploying a different certificate reported changed=False"

    @asyncio_test
    async def test_undeclared_capabilities_raise_unsupported(
        self, target: Target[Any], deploy_request: DeployRequest
    ) -> None:
        if TargetCapability.REMOVE in target.capabilities:
            pytest.skip("the target declares REMOVE (test_remove covers it)")
        problem = await _assert_unsupported(
            "remove (undeclared)", lambda: target.remove(deploy_request)
        )
        assert problem is None, problem

    @asyncio_test
    async def test_remove(self, target: Target[Any], deploy_request: DeployRequest) -> None:
        if TargetCapability.REMOVE not in target.capabilities:
            pytest.skip("the target does not declare REMOVE")
        await target.deploy(deploy_request)
        result = await target.remove(deploy_request)
        assert isinstance(result, DeployResult)
        assert result.changed, "removing a deployed certificate reported changed=False"


# ---------------------------------------------------------------------------------------------
# Notifiers
# ---------------------------------------------------------------------------------------------

Delivered = Sequence[object] | Callable[[], Sequence[object] | Awaitable[Sequence[object]]]
"""What the ``delivered`` fixture may be: a list the fake receiver appends to, or a (possibly
async) callable returning that list. One entry per delivery."""


def _mentions(entry: object, notification_id: str) -> bool:
    """Whether a captured delivery carries the notification id (in whatever form it took)."""
    if isinstance(entry, Notification):
        return entry.id == notification_id
    if isinstance(entry, httpx.Request):
        text = entry.content.decode("utf-8", "replace") + str(entry.url)
        text += " ".join(entry.headers.values())
    elif isinstance(entry, bytes | bytearray):
        text = bytes(entry).decode("utf-8", "replace")
    elif isinstance(entry, str):
        text = entry
    else:
        try:
            text = msgspec.json.encode(entry).decode()
        except (TypeError, msgspec.EncodeError):
            text = repr(entry)
    return notification_id in text


class NotifierContract:
    """What every notifier must do.

    Fixtures: ``notifier``, ``notification`` and ``delivered``: what the fake receiver captured
    (a list, or a callable returning one), one entry per delivery, each carrying the
    notification's id somewhere in its text (a request body, a JSON document, a Notification).
    """

    async def deliveries(self, delivered: Delivered) -> list[object]:
        """Read the ``delivered`` fixture, whichever form it has."""
        if callable(delivered):
            value = delivered()
            if inspect.isawaitable(value):
                value = await value
            return list(value)
        return list(delivered)

    def test_class_attributes(self, notifier: Notifier[Any]) -> None:
        assert isinstance(notifier, Notifier)
        assert_connector_class(type(notifier), "notifier")
        _assert_instance(notifier)

    @asyncio_test
    async def test_check_returns_a_check_result(self, notifier: Notifier[Any]) -> None:
        await _assert_check(notifier)

    @asyncio_test
    async def test_send_delivers_once(
        self, notifier: Notifier[Any], notification: Notification, delivered: Delivered
    ) -> None:
        assert await self.deliveries(delivered) == [], "something was delivered before send()"
        outcome = await _call(notifier.send(notification))
        assert outcome is None, f"send() returned {outcome!r}, expected None"
        entries = await self.deliveries(delivered)
        assert len(entries) == 1, f"send() delivered {len(entries)} times, expected once"
        assert _mentions(entries[0], notification.id), (
            f"the delivery does not carry the notification id {notification.id!r}"
        )


# ---------------------------------------------------------------------------------------------
# Authentication providers and scanners
# ---------------------------------------------------------------------------------------------


class AuthProviderContract:
    """What every auth provider must do.

    Fixtures: ``auth_provider``, ``valid_request`` (credentials it accepts) and
    ``foreign_request`` (credentials of another kind, which it must not claim).
    """

    def test_class_attributes(self, auth_provider: AuthProvider[Any]) -> None:
        assert isinstance(auth_provider, AuthProvider)
        assert_connector_class(type(auth_provider), "auth")
        _assert_instance(auth_provider)

    @asyncio_test
    async def test_check_returns_a_check_result(self, auth_provider: AuthProvider[Any]) -> None:
        await _assert_check(auth_provider)

    @asyncio_test
    async def test_valid_request_yields_a_principal(
        self, auth_provider: AuthProvider[Any], valid_request: AuthRequest
    ) -> None:
        principal = await auth_provider.authenticate(valid_request)
        assert isinstance(principal, Principal), f"got {principal!r} for valid credentials"
        assert principal.subject, "the principal has no subject"
        assert principal.provider, "the principal does not name its provider"

    @asyncio_test
    async def test_foreign_request_is_not_claimed(
        self, auth_provider: AuthProvider[Any], foreign_request: AuthRequest
    ) -> None:
        principal = await auth_provider.authenticate(foreign_request)
        assert principal is None, f"claimed foreign credentials as {principal!r}"


class ScannerContract:
    """What every scanner must do. Fixture: ``scanner``, set up to find at least one certificate."""

    def test_class_attributes(self, scanner: Scanner[Any]) -> None:
        assert isinstance(scanner, Scanner)
        assert_connector_class(type(scanner), "scanner")
        _assert_instance(scanner)

    @asyncio_test
    async def test_check_returns_a_check_result(self, scanner: Scanner[Any]) -> None:
        await _assert_check(scanner)

    @asyncio_test
    async def test_scan_yields_parseable_certificates(self, scanner: Scanner[Any]) -> None:
        results = scanner.scan()
        assert isinstance(results, AsyncIterator), "scan() must return an async iterator"
        found = [item async for item in results]
        assert found, "the scanner found nothing; set the fixture up with a certificate to find"
        for item in found:
            assert isinstance(item, DiscoveredCertificate), f"scan() yielded {item!r}"
            load_certificate(item.certificate_pem)
            for pem in item.chain_pem:
                load_certificates(pem)
            assert item.location, "a discovered certificate must say where it was found"
