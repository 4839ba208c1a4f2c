"""The contract suites pass on correct connectors and catch broken ones.

Correct connectors (the in-memory fakes) run the contracts right here. Broken ones run in a
separate pytest process, as a plugin author's suite would, in pytest-asyncio's *strict* mode:
that also proves the suites' asyncio markers and the ``certctl_*`` fixtures of the pytest
plugin work without this repository's configuration.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from certctl_sdk.auth import AuthRequest
from certctl_sdk.config import Secret
from certctl_sdk.connector import ConnectorContext
from certctl_sdk.issuer import IssueRequest
from certctl_sdk.models import SubjectAltNames
from certctl_sdk.notifier import Notification
from certctl_sdk.target import DeployRequest
from certctl_sdk.testing import TestCA, make_deploy_request, make_issue_request
from certctl_sdk.testing.contracts import (
    AuthProviderContract,
    IssuerContract,
    NotifierContract,
    ScannerContract,
    TargetContract,
)
from certctl_sdk.testing.fakes import (
    FakeAsyncIssuer,
    FakeIssuer,
    FakeIssuerConfig,
    MemoryNotifier,
    MemoryNotifierConfig,
    MemoryTarget,
    MemoryTargetConfig,
    StaticScanner,
    StaticScannerConfig,
    StaticTokenAuth,
    StaticTokenAuthConfig,
)

# --- correct connectors pass -------------------------------------------------------------------


class TestFakeIssuerContract(IssuerContract):
    @pytest.fixture
    def issuer(self, certctl_context: ConnectorContext, certctl_test_ca: TestCA) -> FakeIssuer:
        return FakeIssuer(FakeIssuerConfig(), certctl_context, ca=certctl_test_ca)

    @pytest.fixture
    def issue_request(self) -> IssueRequest:
        sans = SubjectAltNames(dns=("www.example.test", "example.test"), ip=("192.0.2.7",))
        return make_issue_request("www.example.test", sans)[0]


class TestFakeAsyncIssuerContract(TestFakeIssuerContract):
    @pytest.fixture
    def issuer(self, certctl_context: ConnectorContext) -> FakeAsyncIssuer:
        return FakeAsyncIssuer(FakeIssuerConfig(), certctl_context)


class TestMemoryTargetContract(TargetContract):
    @pytest.fixture
    def target(self, certctl_context: ConnectorContext) -> MemoryTarget:
        return MemoryTarget(MemoryTargetConfig(), certctl_context)

    @pytest.fixture
    def deploy_request(self, certctl_test_ca: TestCA) -> DeployRequest:
        return make_deploy_request(certctl_test_ca.issue("www.example.test"))


class TestMemoryNotifierContract(NotifierContract):
    @pytest.fixture
    def notifier(self, certctl_context: ConnectorContext) -> MemoryNotifier:
        return MemoryNotifier(MemoryNotifierConfig(), certctl_context)

    @pytest.fixture
    def notification(self) -> Notification:
        return Notification(
            id="ntf-123",
            event="certificate.expiring",
            subject="www.example.test expires in 7 days",
            body="Renew it.",
            occurred_at=datetime.now(UTC),
        )

    @pytest.fixture
    def delivered(self, notifier: MemoryNotifier) -> list[Notification]:
        return notifier.sent


class TestMemoryNotifierWithAsyncDelivered(TestMemoryNotifierContract):
    """``delivered`` may be an async callable (e.g. one reading a fake HTTP server's log)."""

    @pytest.fixture
    def delivered(self, notifier: MemoryNotifier):
        async def read() -> list[str]:
            return [f'{{"id": "{n.id}"}}' for n in notifier.sent]

        return read


class TestStaticTokenAuthContract(AuthProviderContract):
    @pytest.fixture
    def auth_provider(self, certctl_context: ConnectorContext) -> StaticTokenAuth:
        return StaticTokenAuth(StaticTokenAuthConfig(token=Secret("s3cret")), certctl_context)

    @pytest.fixture
    def valid_request(self) -> AuthRequest:
        return AuthRequest(method="GET", path="/", headers={"authorization": "Bearer s3cret"})

    @pytest.fixture
    def foreign_request(self) -> AuthRequest:
        return AuthRequest(method="GET", path="/", headers={"authorization": "Basic dTpw"})


class TestStaticScannerContract(ScannerContract):
    @pytest.fixture
    def scanner(self, certctl_context: ConnectorContext, certctl_test_ca: TestCA) -> StaticScanner:
        pem = certctl_test_ca.issue("found.example.test").certificate_pem
        return StaticScanner(StaticScannerConfig(certificates=(pem,)), certctl_context)


# --- broken connectors fail, each on the test that names its fault ----------------------------

BROKEN_SUITE = """
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from certctl_sdk.auth import AuthRequest, Principal
from certctl_sdk.errors import UnsupportedOperation
from certctl_sdk.issuer import IssuedCertificate, IssuerCapability, PendingIssuance
from certctl_sdk.models import SubjectAltNames
from certctl_sdk.notifier import Notification
from certctl_sdk.scanner import DiscoveredCertificate
from certctl_sdk.target import DeployResult
from certctl_sdk.testing import TestCA, make_deploy_request, make_issue_request
from certctl_sdk.testing.contracts import (
    AuthProviderContract, IssuerContract, NotifierContract, ScannerContract, TargetContract,
)
from certctl_sdk.testing.fakes import (
    FakeIssuer, FakeIssuerConfig, MemoryNotifier, MemoryNotifierConfig, MemoryTarget,
    MemoryTargetConfig, StaticScanner, StaticScannerConfig, StaticTokenAuth,
    StaticTokenAuthConfig,
)
from certctl_sdk.config import Secret


def as_issued(leaf):
    return IssuedCertificate(
        certificate_pem=leaf.certificate_pem, chain_pem=leaf.chain_pem, serial=leaf.serial,
        not_before=leaf.not_before, not_after=leaf.not_after,
        fingerprint_sha256=leaf.fingerprint_sha256,
    )


class IssuerBase(IssuerContract):
    cls = FakeIssuer

    @pytest.fixture
    def issuer(self, certctl_context):
        return self.cls(FakeIssuerConfig(), certctl_context)

    @pytest.fixture
    def issue_request(self):
        return make_issue_request("www.example.test",
                                  SubjectAltNames(dns=("www.example.test", "alt.example.test")),
                                  validity_seconds=86400)[0]


class GoodIssuer(FakeIssuer):
    kind = "good"


class WrongKeyIssuer(FakeIssuer):
    kind = "wrong-key"

    async def issue(self, request):  # signs a fresh key instead of the CSR's
        return as_issued(self.ca.issue(request.common_name, sans=request.sans))


class DropsSansIssuer(FakeIssuer):
    kind = "drops-sans"

    async def issue(self, request):
        return self._sign(msgspec.structs.replace(
            request, sans=SubjectAltNames(dns=(request.common_name,))))


class LongValidityIssuer(FakeIssuer):
    kind = "long-validity"

    async def issue(self, request):
        leaf = self.ca.sign_csr(request.csr_pem, validity=timedelta(days=400))
        return as_issued(leaf)


class WrongSerialIssuer(FakeIssuer):
    kind = "wrong-serial"

    async def issue(self, request):
        return msgspec.structs.replace(self._sign(request), serial="01")


class SilentRevokeIssuer(FakeIssuer):
    kind = "silent-revoke"
    capabilities = frozenset()  # declares nothing, but revoke() pretends to work


class PendingIssuer(FakeIssuer):
    kind = "pending"

    async def issue(self, request):
        return PendingIssuance(order_id="o1")


class ForeignCrlIssuer(FakeIssuer):
    kind = "foreign-crl"

    async def sign_crl(self, request):
        original, self.ca = self.ca, TestCA.create()
        try:
            return await super().sign_crl(request)
        finally:
            self.ca = original


class BadKindIssuer(FakeIssuer):
    kind = "Bad_Kind"


class TestGoodIssuer(IssuerBase):
    cls = GoodIssuer

class TestWrongKeyIssuer(IssuerBase):
    cls = WrongKeyIssuer

class TestDropsSansIssuer(IssuerBase):
    cls = DropsSansIssuer

class TestLongValidityIssuer(IssuerBase):
    cls = LongValidityIssuer

class TestWrongSerialIssuer(IssuerBase):
    cls = WrongSerialIssuer

class TestSilentRevokeIssuer(IssuerBase):
    cls = SilentRevokeIssuer

class TestPendingIssuer(IssuerBase):
    cls = PendingIssuer

class TestForeignCrlIssuer(IssuerBase):
    cls = ForeignCrlIssuer

class TestBadKindIssuer(IssuerBase):
    cls = BadKindIssuer


class AlwaysChangedTarget(MemoryTarget):
    kind = "always-changed"

    async def deploy(self, request):
        return DeployResult(changed=True, message="wrote it again")


class NeverChangedTarget(MemoryTarget):
    kind = "never-changed"

    async def deploy(self, request):
        return DeployResult(changed=False, message="did nothing")


class RemoveWithoutCapability(MemoryTarget):
    kind = "remove-undeclared"
    capabilities = frozenset()


class TargetBase(TargetContract):
    cls = MemoryTarget

    @pytest.fixture
    def target(self, certctl_context):
        return self.cls(MemoryTargetConfig(), certctl_context)

    @pytest.fixture
    def deploy_request(self, certctl_test_ca):
        return make_deploy_request(certctl_test_ca.issue("www.example.test"))


class TestAlwaysChangedTarget(TargetBase):
    cls = AlwaysChangedTarget

class TestNeverChangedTarget(TargetBase):
    cls = NeverChangedTarget

class TestRemoveWithoutCapability(TargetBase):
    cls = RemoveWithoutCapability


class TwiceNotifier(MemoryNotifier):
    kind = "twice"

    async def send(self, notification):
        self.sent += [notification, notification]


class AnonymousNotifier(MemoryNotifier):
    kind = "anonymous"

    async def send(self, notification):
        self.sent.append("something happened")


class NotifierBase(NotifierContract):
    cls = MemoryNotifier

    @pytest.fixture
    def notifier(self, certctl_context):
        return self.cls(MemoryNotifierConfig(), certctl_context)

    @pytest.fixture
    def notification(self):
        return Notification(id="ntf-9", event="e", subject="s", body="b",
                            occurred_at=datetime.now(UTC))

    @pytest.fixture
    def delivered(self, notifier):
        return notifier.sent


class TestTwiceNotifier(NotifierBase):
    cls = TwiceNotifier

class TestAnonymousNotifier(NotifierBase):
    cls = AnonymousNotifier


class GreedyAuth(StaticTokenAuth):
    kind = "greedy"

    async def authenticate(self, request):
        return Principal(subject="anyone", provider=self.kind)


class TestGreedyAuth(AuthProviderContract):
    @pytest.fixture
    def auth_provider(self, certctl_context):
        return GreedyAuth(StaticTokenAuthConfig(token=Secret("t")), certctl_context)

    @pytest.fixture
    def valid_request(self):
        return AuthRequest(method="GET", path="/", headers={"authorization": "Bearer t"})

    @pytest.fixture
    def foreign_request(self):
        return AuthRequest(method="GET", path="/", headers={})


class GarbageScanner(StaticScanner):
    kind = "garbage"

    async def scan(self):
        yield DiscoveredCertificate(certificate_pem="not a certificate", location="/etc/x.pem")


class TestGarbageScanner(ScannerContract):
    @pytest.fixture
    def scanner(self, certctl_context):
        return GarbageScanner(StaticScannerConfig(), certctl_context)
"""

# test node id (class::test) -> a phrase its failure message must contain
EXPECTED_FAILURES = {
    "TestWrongKeyIssuer::test_issue_signs_the_request": "does not carry the CSR's public key",
    "TestDropsSansIssuer::test_issue_signs_the_request": "lacks requested SANs",
    "TestLongValidityIssuer::test_issue_signs_the_request": "exceeds the requested validity",
    "TestWrongSerialIssuer::test_issue_signs_the_request": "serial does not match",
    "TestSilentRevokeIssuer::test_undeclared_capabilities_raise_unsupported": (
        "revoke (undeclared) returned None"
    ),
    "TestPendingIssuer::test_issue_signs_the_request": "ASYNC_ORDER is not declared",
    "TestForeignCrlIssuer::test_sign_crl": "the CRL signature does not verify",
    "TestBadKindIssuer::test_class_attributes": "must match",
    "TestAlwaysChangedTarget::test_deploy_then_redeploy_same_is_unchanged": (
        "same certificate again reported changed=True"
    ),
    "TestNeverChangedTarget::test_deploy_then_redeploy_same_is_unchanged": (
        "first deployment reported changed=False"
    ),
    "TestNeverChangedTarget::test_deploy_a_different_certificate_changes": (
        "first deployment reported changed=False"
    ),
    # Knock-on failures: each is the same fault seen from another test.
    "TestPendingIssuer::test_revoke": "ASYNC_ORDER is not declared",
    "TestPendingIssuer::test_ca_certificates": "ASYNC_ORDER is not declared",
    "TestPendingIssuer::test_sign_crl": "ASYNC_ORDER is not declared",
    "TestPendingIssuer::test_renewal_info": "ASYNC_ORDER is not declared",
    "TestAlwaysChangedTarget::test_remove": (
        "removing a deployed certificate reported changed=False"
    ),
    "TestNeverChangedTarget::test_remove": "removing a deployed certificate reported changed=False",
    "TestRemoveWithoutCapability::test_undeclared_capabilities_raise_unsupported": (
        "remove (undeclared) returned DeployResult"
    ),
    "TestTwiceNotifier::test_send_delivers_once": "delivered 2 times",
    "TestAnonymousNotifier::test_send_delivers_once": "does not carry the notification id",
    "TestGreedyAuth::test_foreign_request_is_not_claimed": "claimed foreign credentials",
    "TestGarbageScanner::test_scan_yields_parseable_certificates": "no PEM CERTIFICATE block",
}


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Run BROKEN_SUITE in its own pytest; map ``Class::test`` to (outcome, message)."""
    root = tmp_path_factory.mktemp("broken")
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    (root / "test_broken.py").write_text(textwrap.dedent(BROKEN_SUITE))
    report = root / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "--rootdir", str(root), "-c", str(root / "pytest.ini"), str(root / "test_broken.py")],
        cwd=root, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    results: dict[str, tuple[str, str]] = {}
    tree = ET.parse(report)  # noqa: S314 - our own pytest run wrote this file
    for case in tree.getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                # Only the exception's message: the traceback text quotes the contract's source.
                message = child.get("message") or ""
        results[name] = (outcome, message)
    return results


@pytest.mark.parametrize("node", sorted(EXPECTED_FAILURES))
def test_contract_catches_broken_connector(node: str, broken_run) -> None:
    outcome, message = broken_run[node]
    assert outcome == "failure", f"{node} was {outcome}"
    assert EXPECTED_FAILURES[node] in message


def test_only_the_expected_tests_fail(broken_run) -> None:
    failing = {n for n, (outcome, _) in broken_run.items() if outcome in ("failure", "error")}
    assert failing == set(EXPECTED_FAILURES)
    # The correct issuer passes everything in strict mode, with the plugin's fixtures.
    good = {n: o for n, (o, _) in broken_run.items() if n.startswith("TestGoodIssuer::")}
    assert good, "the well-behaved issuer did not run"
    assert set(good.values()) == {"passed"}, good
