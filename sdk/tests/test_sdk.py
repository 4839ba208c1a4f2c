"""The SDK's own modules: config and Secret, errors, PEM helpers, hookspecs, exports, bases."""

from __future__ import annotations

import importlib
import pickle
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import pluggy
import pytest

import certctl_sdk
from certctl_sdk import hookspecs
from certctl_sdk.config import (
    MASK,
    ConnectorConfig,
    Secret,
    config_schema,
    decode_config,
    encode_config,
    reveal,
)
from certctl_sdk.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    DeploymentError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from certctl_sdk.issuer import Issuer, IssueRequest, IssueResult
from certctl_sdk.models import SubjectAltNames
from certctl_sdk.pem import (
    PemError,
    bundle_from_pem,
    common_name_of,
    fingerprint_sha256,
    load_certificate,
    load_certificates,
    load_csr,
    load_private_key,
    sans_of,
    serial_hex,
)
from certctl_sdk.testing import TestCA, make_context, make_csr
from certctl_sdk.testing.fakes import FakeIssuer, MemoryNotifier, MemoryTarget

# --- config and Secret ----------------------------------------------------------------------------


class ExampleConfig(ConnectorConfig, frozen=True, kw_only=True):
    url: Annotated[str, msgspec.Meta(description="Endpoint")]
    token: Secret
    retries: int = 3


def test_secret_never_renders() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(ExampleConfig(url="u", token=secret))
    assert reveal(secret) == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def test_decode_and_encode_config_round_trip() -> None:
    config = decode_config(ExampleConfig, {"url": "https://x", "token": "t0k"})
    assert reveal(config.token) == "t0k"
    assert config.retries == 3
    assert encode_config(config) == {"url": "https://x", "token": MASK, "retries": 3}
    assert encode_config(config, secret=reveal)["token"] == "t0k"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"url": "u", "token": "t", "extra": 1}, "extra"),
        ({"url": "u"}, "token"),
        ({"url": "u", "token": 5}, "secret"),
        ({"url": "u", "token": "t", "retries": "3"}, "retries"),
        ([], "JSON object"),
    ],
)
def test_decode_config_errors_name_the_field(data: Any, phrase: str) -> None:
    with pytest.raises(ConfigurationError, match=phrase):
        decode_config(ExampleConfig, data)


def test_config_schema_marks_secrets_write_only() -> None:
    schema = config_schema(ExampleConfig)
    props = schema["$defs"]["ExampleConfig"]["properties"]
    assert props["token"] == {"type": "string", "format": "password", "writeOnly": True}
    assert props["url"]["description"] == "Endpoint"


# --- errors ---------------------------------------------------------------------------------------


def test_error_tree_and_retry_flags() -> None:
    for cls in (
        ConfigurationError,
        AuthenticationError,
        UnsupportedOperation,
        RejectedError,
        TransientError,
    ):
        assert issubclass(cls, ConnectorError)
    assert TransientError("x", retry_after=5).retry_after == 5
    assert TransientError.retryable
    assert not RejectedError.retryable
    err = DeploymentError("reload failed", rolled_back=True)
    assert str(err) == err.message == "reload failed"
    assert err.rolled_back


# --- PEM helpers ----------------------------------------------------------------------------------


def test_pem_helpers_read_what_the_test_ca_writes() -> None:
    ca = TestCA.create()
    leaf = ca.issue("p.test", sans=SubjectAltNames(dns=("p.test",), ip=("192.0.2.9",)))
    cert = load_certificate(leaf.certificate_pem)
    assert serial_hex(cert) == leaf.serial
    assert fingerprint_sha256(cert) == leaf.fingerprint_sha256
    assert common_name_of(cert) == "p.test"
    assert sans_of(cert).ip == ("192.0.2.9",)
    assert len(load_certificates(leaf.certificate_pem + ca.certificate_pem)) == 2
    bundle = bundle_from_pem(leaf.certificate_pem, leaf.chain_pem)
    assert (bundle.serial, bundle.not_after) == (leaf.serial, leaf.not_after)
    assert load_private_key(leaf.key_pem)
    csr_pem, _ = make_csr("c.test")
    assert common_name_of(load_csr(csr_pem)) == "c.test"


@pytest.mark.parametrize(
    ("call", "phrase"),
    [
        (lambda: load_certificate("junk"), "no PEM CERTIFICATE"),
        (
            lambda: load_certificate(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
            ),
            "malformed certificate",
        ),
        (lambda: load_csr("junk"), "no PEM CERTIFICATE REQUEST"),
        (lambda: load_private_key("junk"), "malformed private key"),
    ],
)
def test_pem_errors(call: Any, phrase: str) -> None:
    with pytest.raises(PemError, match=phrase):
        call()


def test_load_certificate_wants_exactly_one() -> None:
    ca = TestCA.create()
    with pytest.raises(PemError, match="expected one certificate, found 2"):
        load_certificate(ca.certificate_pem * 2)


# --- hookspecs, exports and bases -----------------------------------------------------------------


def test_hookspecs_register_and_collect() -> None:
    class Plugin:
        @hookspecs.hookimpl
        def register_issuers(self) -> list[type[Issuer[Any]]]:
            return [FakeIssuer]

        @hookspecs.hookimpl
        def register_targets(self) -> list[type[Any]]:
            return [MemoryTarget]

        @hookspecs.hookimpl
        def register_notifiers(self) -> list[type[Any]]:
            return [MemoryNotifier]

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(Plugin())
    pm.check_pending()
    assert pm.hook.register_issuers() == [[FakeIssuer]]
    assert pm.hook.register_targets() == [[MemoryTarget]]
    assert pm.hook.register_scanners() == []


def test_hookspec_misspelt_impl_fails_check_pending() -> None:
    class Plugin:
        @hookspecs.hookimpl
        def register_issuer(self) -> list[Any]:  # missing "s"
            return []

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(Plugin())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


@pytest.mark.parametrize(
    "module",
    [
        "certctl_sdk",
        "certctl_sdk.filedeploy",
        "certctl_sdk.testing",
        "certctl_sdk.testing.fakes",
        "certctl_sdk.testing.contracts",
        "certctl_sdk.testing.http",
        "certctl_sdk.testing.certs",
    ],
)
def test_all_is_sorted_and_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    exported = list(mod.__all__)
    # isort style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    order = sorted(exported, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert exported == order, f"{module}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"


def test_top_level_exports_the_file_deployment_api() -> None:
    from certctl_sdk import filedeploy

    for name in (
        "DeployOutcome",
        "DeployPlan",
        "FileTarget",
        "ManagedFile",
        "TlsCheck",
        "apply_plan",
    ):
        assert getattr(certctl_sdk, name) is getattr(filedeploy, name)


async def test_optional_issuer_operations_default_to_unsupported() -> None:
    class Minimal(Issuer[ConnectorConfig]):
        kind = "minimal"
        display_name = "Minimal"
        Config = ConnectorConfig

        async def issue(self, request: IssueRequest) -> IssueResult:
            raise RejectedError("no")

    issuer = Minimal(ConnectorConfig(), make_context())
    assert (await issuer.check()).ok
    await issuer.aclose()
    for call in (issuer.ca_certificates(), issuer.poll("o"), issuer.renewal_info("pem")):
        with pytest.raises(UnsupportedOperation, match="minimal issuers"):
            await call


def test_subject_alt_names_all_is_stable() -> None:
    sans = SubjectAltNames(dns=("a",), ip=("1.2.3.4",), email=("e@x",), uri=("u:x",))
    assert sans.all() == ("a", "1.2.3.4", "e@x", "u:x")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"dns": ["a"], "bogus": []}, SubjectAltNames)


def test_datetimes_in_wire_types_round_trip() -> None:
    leaf = TestCA.create().issue("w.test")
    bundle = bundle_from_pem(leaf.certificate_pem)
    decoded = msgspec.json.decode(msgspec.json.encode(bundle), type=type(bundle))
    assert decoded == bundle
    assert decoded.not_after - decoded.not_before > timedelta(days=1)
    assert decoded.not_after.tzinfo is not None
    assert decoded.not_after > datetime.now(UTC)
