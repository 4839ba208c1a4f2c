"""Behaviour of the Local CA against real verifiers: openssl and cryptography's path builder."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from certctl_issuer_local import ROOT_STATE_KEY, LocalIssuerConfig
from certctl_sdk import (
    ConfigurationError,
    CrlEntry,
    CrlRequest,
    IssueRequest,
    KeyType,
    RejectedError,
    RevocationReason,
    RevokeRequest,
    Secret,
    SubjectAltNames,
    decode_config,
)
from certctl_sdk.pem import load_certificate, serial_hex
from certctl_sdk.testing import (
    ManualClock,
    MemoryStateStore,
    TestCA,
    generate_private_key,
    make_csr,
    private_key_pem,
)

HOST = "www.example.test"
BAD_CERT_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
DAY = 86400


def request(csr_pem: str, **fields: Any) -> IssueRequest:
    """An IssueRequest for HOST unless fields say otherwise."""
    values: dict[str, Any] = {
        "csr_pem": csr_pem,
        "common_name": HOST,
        "sans": SubjectAltNames(dns=(HOST,)),
        "validity_seconds": 30 * DAY,
    }
    values.update(fields)
    return IssueRequest(**values)


def write(path: Path, pems: Sequence[str]) -> Path:
    path.write_text("".join(pems))
    return path


def openssl_verify(
    openssl: Callable[..., Any], tmp_path: Path, root: str, chain: Sequence[str], leaf: str
) -> None:
    """``openssl verify -CAfile root -untrusted chain leaf`` must say OK."""
    args = ["verify", "-CAfile", write(tmp_path / "root.pem", [root])]
    if chain:
        args += ["-untrusted", write(tmp_path / "chain.pem", chain)]
    result = openssl(*args, write(tmp_path / "leaf.pem", [leaf]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK"), result.stdout


def server_verify(
    root: str, chain: Sequence[str], leaf: str, host: str = HOST
) -> list[x509.Certificate]:
    """Build and check the path as a TLS client would (cryptography's webpki-style verifier)."""
    verifier = (
        PolicyBuilder()
        .store(Store([load_certificate(root)]))
        .time(datetime.now(UTC))
        .build_server_verifier(x509.DNSName(host))
    )
    return verifier.verify(load_certificate(leaf), [load_certificate(p) for p in chain])


def ext(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


def make_sub_ca(
    root: TestCA,
    key_type: KeyType = KeyType.ECDSA_P256,
    *,
    validity: timedelta = timedelta(days=365),
    ca: bool = True,
    key_cert_sign: bool = True,
    crl_sign: bool = True,
    path_length: int | None = 0,
) -> tuple[str, str]:
    """An intermediate signed by ``root``, built by hand as an operator's PKI would: (cert, key)."""
    key = generate_private_key(key_type)
    now = datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Issuing CA")]))
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.private_key.public_key()),
            critical=False,
        )
        .sign(root.private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), private_key_pem(key)


def sub_ca_config(root: TestCA, **kwargs: Any) -> LocalIssuerConfig:
    cert_pem, key_pem = make_sub_ca(root, **kwargs)
    return LocalIssuerConfig(
        mode="sub-ca",
        ca_certificate_pem=cert_pem,
        ca_private_key=Secret(key_pem),
        chain_pem=root.certificate_pem,
    )


@pytest.fixture(scope="module")
def enterprise_root() -> TestCA:
    return TestCA.create(KeyType.RSA_2048, "Example Enterprise Root")


# -- key types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("leaf_type", list(KeyType), ids=str)
@pytest.mark.parametrize("ca_type", list(KeyType), ids=str)
async def test_every_key_type_combination_issues_a_verifiable_chain(
    ca_type: KeyType, leaf_type: KeyType, root_issuer, csrs, openssl, tmp_path: Path
):
    issuer = await root_issuer(ca_type)
    issued = await issuer.issue(request(csrs(leaf_type)))
    leaf = load_certificate(issued.certificate_pem)
    root_pem = (await issuer.ca_certificates())[-1]
    root = load_certificate(root_pem)

    openssl_verify(openssl, tmp_path, root_pem, issued.chain_pem, issued.certificate_pem)
    if ca_type is not KeyType.ED25519:  # the web PKI profile does not admit Ed25519 CAs
        server_verify(root_pem, issued.chain_pem, issued.certificate_pem)

    assert issued.chain_pem == (root_pem,)
    assert ext(leaf, x509.BasicConstraints).critical
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment is leaf_type.value.startswith("rsa")
    assert not usage.value.key_cert_sign
    assert (
        ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(root, x509.SubjectKeyIdentifier).value.digest
    )
    assert ext(leaf, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        leaf.public_key()
    )
    expected_hash = {KeyType.ECDSA_P384: "sha384", KeyType.ED25519: None}.get(ca_type, "sha256")
    algorithm = leaf.signature_hash_algorithm
    assert (algorithm.name if algorithm else None) == expected_hash


async def test_rsa_root_generation_runs_in_a_thread(make_issuer, monkeypatch):
    calls: list[str] = []
    real = asyncio.to_thread

    async def spy(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        calls.append(func.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    await make_issuer(ca_key_type=KeyType.RSA_2048).ca_certificates()
    assert calls == ["_generate_key"]
    calls.clear()
    await make_issuer(ca_key_type=KeyType.ECDSA_P256).ca_certificates()
    assert calls == []


# -- what goes into a certificate ----------------------------------------------------------------


async def test_names_and_extensions_come_from_the_request_not_the_csr(make_issuer):
    issuer = make_issuer()
    csr_pem, _ = make_csr("csr.example.test", SubjectAltNames(dns=("evil.example.test",)))
    sans = SubjectAltNames(
        dns=("a.example.test", "b.example.test"),
        ip=("192.0.2.7", "2001:db8::1"),
        email=("ops@example.test",),
        uri=("spiffe://example.test/web",),
    )
    issued = await issuer.issue(
        request(
            csr_pem,
            common_name="a.example.test",
            sans=sans,
            ekus=("serverAuth", "clientAuth", "serverAuth"),
            must_staple=True,
            ocsp_urls=("http://ocsp.example.test/",),
            ca_issuer_urls=("http://pki.example.test/ca.cer",),
            crl_urls=("http://pki.example.test/ca.crl", "ldap://pki.example.test/ca"),
        )
    )
    cert = load_certificate(issued.certificate_pem)

    assert cert.subject.rfc4514_string() == "CN=a.example.test"
    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["a.example.test", "b.example.test"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.7"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert san.value.get_values_for_type(x509.RFC822Name) == ["ops@example.test"]
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.test/web"
    ]
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert list(ext(cert, x509.TLSFeature).value) == [x509.TLSFeatureType.status_request]
    aia = ext(cert, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "http://ocsp.example.test/"),
        (AuthorityInformationAccessOID.CA_ISSUERS, "http://pki.example.test/ca.cer"),
    ]
    (point,) = ext(cert, x509.CRLDistributionPoints).value
    assert [n.value for n in point.full_name or []] == [
        "http://pki.example.test/ca.crl",
        "ldap://pki.example.test/ca",
    ]
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.OCSPNoCheck)


async def test_optional_extensions_are_absent_unless_asked(make_issuer):
    issued = await make_issuer().issue(request(make_csr(HOST)[0]))
    cert = load_certificate(issued.certificate_pem)
    for kind in (
        x509.TLSFeature,
        x509.AuthorityInformationAccess,
        x509.CRLDistributionPoints,
        x509.OCSPNoCheck,
    ):
        with pytest.raises(x509.ExtensionNotFound):
            ext(cert, kind)


async def test_ocsp_responder_certificate_has_no_check_and_ocsp_signing(make_issuer):
    issued = await make_issuer().issue(
        request(
            make_csr("ocsp.example.test")[0],
            common_name="ocsp.example.test",
            sans=SubjectAltNames(),
            ekus=(),
            ocsp_no_check=True,
        )
    )
    cert = load_certificate(issued.certificate_pem)
    assert not ext(cert, x509.OCSPNoCheck).critical
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)


async def test_empty_subject_makes_the_san_critical(make_issuer, openssl, tmp_path):
    issuer = make_issuer()
    issued = await issuer.issue(request(make_csr(HOST)[0], common_name=""))
    cert = load_certificate(issued.certificate_pem)
    assert cert.subject == x509.Name([])
    assert ext(cert, x509.SubjectAlternativeName).critical
    openssl_verify(
        openssl, tmp_path, issued.chain_pem[-1], issued.chain_pem, issued.certificate_pem
    )


async def test_ca_request_issues_a_path_length_zero_sub_ca_that_can_sign(
    make_issuer, openssl, tmp_path
):
    root_issuer = make_issuer(common_name="Test Root")
    csr_pem, key_pem = make_csr("Issuing CA", SubjectAltNames(), KeyType.ECDSA_P384)
    sub = await root_issuer.issue(
        request(csr_pem, common_name="Issuing CA", sans=SubjectAltNames(), ekus=(), is_ca=True)
    )
    sub_cert = load_certificate(sub.certificate_pem)
    assert ext(sub_cert, x509.BasicConstraints).value == x509.BasicConstraints(
        ca=True, path_length=0
    )
    usage = ext(sub_cert, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign

    issuing = make_issuer(
        mode="sub-ca",
        ca_certificate_pem=sub.certificate_pem,
        ca_private_key=Secret(key_pem),
        chain_pem="".join(sub.chain_pem),
    )
    leaf = await issuing.issue(request(make_csr(HOST)[0]))
    assert leaf.chain_pem == (sub.certificate_pem, *sub.chain_pem)
    openssl_verify(openssl, tmp_path, sub.chain_pem[-1], leaf.chain_pem, leaf.certificate_pem)
    server_verify(sub.chain_pem[-1], leaf.chain_pem, leaf.certificate_pem)

    with pytest.raises(RejectedError, match="pathLenConstraint 0"):
        await issuing.issue(
            request(make_csr("x")[0], common_name="x", sans=SubjectAltNames(), is_ca=True)
        )


async def test_serials_are_random_positive_and_sized(make_issuer):
    csr_pem = make_csr(HOST)[0]
    wide = make_issuer()
    serials = [int((await wide.issue(request(csr_pem))).serial, 16) for _ in range(50)]
    assert len(set(serials)) == 50
    assert all(0 < s < 2**159 for s in serials)
    assert max(serials).bit_length() > 150  # 159 random bits, not a counter

    narrow = make_issuer(serial_bits=64)
    issued = await narrow.issue(request(csr_pem))
    assert 0 < int(issued.serial, 16) < 2**64
    assert issued.serial == serial_hex(load_certificate(issued.certificate_pem))


# -- validity ------------------------------------------------------------------------------------


async def test_validity_is_backdated_and_follows_the_request(make_issuer):
    clock = ManualClock(datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC))
    issuer = make_issuer(clock=clock)
    issued = await issuer.issue(request(make_csr(HOST)[0], validity_seconds=7 * DAY))
    assert issued.not_before == clock.now - timedelta(minutes=1)
    assert issued.not_after == clock.now + timedelta(days=7)


async def test_zero_validity_means_the_default_and_long_requests_are_capped(make_issuer):
    clock = ManualClock(datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC))
    issuer = make_issuer(clock=clock, default_validity_days=10, max_validity_days=30)
    csr_pem = make_csr(HOST)[0]
    default = await issuer.issue(request(csr_pem, validity_seconds=0))
    assert default.not_after == clock.now + timedelta(days=10)
    capped = await issuer.issue(request(csr_pem, validity_seconds=400 * DAY))
    assert capped.not_after == clock.now + timedelta(days=30)
    with pytest.raises(RejectedError, match="negative"):
        await issuer.issue(request(csr_pem, validity_seconds=-1))


async def test_validity_never_exceeds_the_ca(make_issuer, openssl, tmp_path):
    issuer = make_issuer(ca_validity_days=2)
    root_pem = (await issuer.ca_certificates())[0]
    root = load_certificate(root_pem)
    issued = await issuer.issue(request(make_csr(HOST)[0], validity_seconds=90 * DAY))
    assert issued.not_after == root.not_valid_after_utc
    assert issued.not_before >= root.not_valid_before_utc
    openssl_verify(openssl, tmp_path, root_pem, issued.chain_pem, issued.certificate_pem)


async def test_validity_is_capped_by_the_earliest_expiry_in_the_chain(make_issuer):
    short_root = TestCA.create(validity=timedelta(days=5))
    issuer = make_issuer(sub_ca_config(short_root, validity=timedelta(days=365)))
    issued = await issuer.issue(request(make_csr(HOST)[0], validity_seconds=90 * DAY))
    assert issued.not_after == short_root.certificate.not_valid_after_utc


async def test_leaves_never_start_before_a_ca_that_starts_in_the_future(
    make_issuer, enterprise_root
):
    config = sub_ca_config(enterprise_root)
    ca = load_certificate(config.ca_certificate_pem or "")
    clock = ManualClock(ca.not_valid_before_utc - timedelta(seconds=30))
    issuer = make_issuer(config, clock=clock)
    issued = await issuer.issue(request(make_csr(HOST)[0]))
    assert issued.not_before == ca.not_valid_before_utc
    with pytest.raises(RejectedError, match="valid only from"):
        await issuer.issue(request(make_csr(HOST)[0], validity_seconds=10))


async def test_an_expired_ca_is_a_configuration_error(make_issuer, enterprise_root):
    clock = ManualClock()
    issuer = make_issuer(sub_ca_config(enterprise_root, validity=timedelta(days=30)), clock=clock)
    await issuer.issue(request(make_csr(HOST)[0]))
    clock.advance(timedelta(days=31))
    with pytest.raises(ConfigurationError, match="expired"):
        await issuer.issue(request(make_csr(HOST)[0]))

    fresh = make_issuer(issuer.config, clock=clock)
    result = await fresh.check()
    assert not result.ok
    assert "expired" in result.message


# -- sub-CA mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_type", [KeyType.ECDSA_P256, KeyType.RSA_3072, KeyType.ED25519], ids=str
)
async def test_supplied_sub_ca_chains_to_its_root(
    key_type, make_issuer, enterprise_root, openssl, tmp_path
):
    config = sub_ca_config(enterprise_root, key_type=key_type)
    issuer = make_issuer(config)
    issued = await issuer.issue(request(make_csr(HOST)[0]))

    assert issued.chain_pem == (config.ca_certificate_pem, enterprise_root.certificate_pem)
    assert await issuer.ca_certificates() == issued.chain_pem
    leaf = load_certificate(issued.certificate_pem)
    sub = load_certificate(config.ca_certificate_pem or "")
    assert leaf.issuer == sub.subject
    openssl_verify(
        openssl, tmp_path, enterprise_root.certificate_pem, issued.chain_pem, issued.certificate_pem
    )
    if key_type is not KeyType.ED25519:
        path = server_verify(
            enterprise_root.certificate_pem, issued.chain_pem, issued.certificate_pem
        )
        assert [c.subject for c in path] == [
            leaf.subject,
            sub.subject,
            enterprise_root.certificate.subject,
        ]


async def test_sub_ca_without_chain_sends_only_itself(make_issuer, enterprise_root):
    cert_pem, key_pem = make_sub_ca(enterprise_root)
    issuer = make_issuer(mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(key_pem))
    issued = await issuer.issue(request(make_csr(HOST)[0]))
    assert issued.chain_pem == (cert_pem,)


async def test_check_reports_the_ca(make_issuer, enterprise_root):
    config = sub_ca_config(enterprise_root)
    result = await make_issuer(config).check()
    assert result.ok
    assert "CN=Example Issuing CA" in result.message
    assert result.details["subject"] == "CN=Example Issuing CA"
    assert result.details["mode"] == "sub-ca"
    assert result.details["key_type"] == "ecdsa-p256"
    assert result.details["chain_length"] == "2"
    assert (
        datetime.fromisoformat(result.details["not_after"])
        == load_certificate(config.ca_certificate_pem or "").not_valid_after_utc
    )


# -- configuration errors ------------------------------------------------------------------------


async def test_key_that_does_not_match_the_certificate(make_issuer, enterprise_root):
    cert_pem, _ = make_sub_ca(enterprise_root)
    _, other_key = make_sub_ca(enterprise_root)
    issuer = make_issuer(
        mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(other_key)
    )
    with pytest.raises(ConfigurationError, match="does not match"):
        await issuer.issue(request(make_csr(HOST)[0]))
    result = await issuer.check()
    assert not result.ok
    assert "ca_private_key does not match ca_certificate_pem" in result.message


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not a key", "ca_private_key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ca_private_key"),
    ],
)
async def test_unreadable_key(make_issuer, enterprise_root, key, message):
    cert_pem, _ = make_sub_ca(enterprise_root)
    issuer = make_issuer(mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(key))
    with pytest.raises(ConfigurationError, match=message):
        await issuer.ca_certificates()


async def test_encrypted_key_is_refused_with_advice(make_issuer, enterprise_root):
    cert_pem, key_pem = make_sub_ca(enterprise_root)
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()
    issuer = make_issuer(
        mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(encrypted)
    )
    with pytest.raises(ConfigurationError, match="unencrypted"):
        await issuer.ca_certificates()


def test_leaf_certificate_is_not_a_ca(enterprise_root):
    leaf = enterprise_root.issue(HOST)
    with pytest.raises(ConfigurationError, match="not a CA certificate"):
        LocalIssuerConfig(
            mode="sub-ca",
            ca_certificate_pem=leaf.certificate_pem,
            ca_private_key=Secret(leaf.key_pem),
        )


def test_ca_without_key_cert_sign(enterprise_root):
    cert_pem, key_pem = make_sub_ca(enterprise_root, key_cert_sign=False)
    with pytest.raises(ConfigurationError, match="keyCertSign"):
        LocalIssuerConfig(
            mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(key_pem)
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"mode": "sub-ca", "ca_certificate_pem": "garbage", "ca_private_key": "k"},
            "ca_certificate_pem: no PEM",
        ),
        (
            {
                "mode": "sub-ca",
                "ca_certificate_pem": BAD_CERT_PEM,
                "ca_private_key": "k",
            },
            "ca_certificate_pem: malformed",
        ),
        ({"mode": "sub-ca"}, "needs both"),
        ({"mode": "sub-ca", "ca_private_key": "k"}, "needs both"),
        ({"ca_private_key": "k"}, "only apply in sub-ca mode"),
        ({"chain_pem": "x"}, "only apply in sub-ca mode"),
        ({"default_validity_days": 100, "max_validity_days": 90}, "exceeds max_validity_days"),
        ({"serial_bits": 32}, "serial_bits"),
        ({"ca_key_type": "dsa-1024"}, "ca_key_type"),
        ({"common_name": ""}, "common_name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_configuration_through_decode(fields, message):
    with pytest.raises(ConfigurationError, match=message):
        decode_config(LocalIssuerConfig, fields)


def test_chain_must_have_issued_the_ca(enterprise_root):
    cert_pem, key_pem = make_sub_ca(enterprise_root)
    stranger = TestCA.create(common_name="Some Other Root")
    with pytest.raises(ConfigurationError, match="did not issue"):
        LocalIssuerConfig(
            mode="sub-ca",
            ca_certificate_pem=cert_pem,
            ca_private_key=Secret(key_pem),
            chain_pem=stranger.certificate_pem,
        )
    with pytest.raises(ConfigurationError, match="chain_pem: no PEM"):
        LocalIssuerConfig(
            mode="sub-ca",
            ca_certificate_pem=cert_pem,
            ca_private_key=Secret(key_pem),
            chain_pem="junk",
        )


def test_empty_config_is_a_self_signed_root():
    config = decode_config(LocalIssuerConfig, {})
    assert config.mode == "self-signed"
    assert config.max_validity_days >= config.default_validity_days


def test_demo_configuration_decodes():
    # core/src/certctl/demo.py creates its issuer with exactly this.
    config = decode_config(LocalIssuerConfig, {"common_name": "certctl Demo Root CA"})
    assert config.common_name == "certctl Demo Root CA"


# -- bad requests --------------------------------------------------------------------------------


def tampered(csr_pem: str) -> str:
    """The same CSR with one bit of its signature flipped."""
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    )
    der[-5] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    "key_type", [KeyType.ECDSA_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str
)
async def test_csr_with_a_bad_signature_is_rejected(make_issuer, key_type):
    with pytest.raises(RejectedError, match="signature"):
        await make_issuer().issue(request(tampered(make_csr(HOST, key_type=key_type)[0])))


async def test_garbage_csr_is_rejected(make_issuer):
    with pytest.raises(RejectedError, match="invalid certificate request"):
        await make_issuer().issue(request("hello"))


async def test_unsupported_leaf_key_is_rejected(make_issuer):
    key = ec.generate_private_key(ec.SECP521R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .sign(key, hashes.SHA512())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(RejectedError, match="unsupported key"):
        await make_issuer().issue(request(pem))


async def test_csr_with_the_ca_key_is_rejected(make_issuer, enterprise_root):
    cert_pem, key_pem = make_sub_ca(enterprise_root)
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .sign(key, hashes.SHA256())
    )
    issuer = make_issuer(mode="sub-ca", ca_certificate_pem=cert_pem, ca_private_key=Secret(key_pem))
    with pytest.raises(RejectedError, match="CA's own key"):
        await issuer.issue(request(csr.public_bytes(serialization.Encoding.PEM).decode()))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ekus": ("anyThing",)}, "unknown extended key usage"),
        ({"sans": SubjectAltNames(ip=("300.1.1.1",))}, "subject alternative name"),
        ({"common_name": "x" * 65}, "common name"),
        ({"common_name": "", "sans": SubjectAltNames()}, "neither a common name"),
    ],
)
async def test_bad_request_fields_are_rejected(make_issuer, fields, message):
    with pytest.raises(RejectedError, match=message):
        await make_issuer().issue(request(make_csr(HOST)[0], **fields))


# -- revocation and CRLs -------------------------------------------------------------------------


async def test_revoke_accepts_our_certificates_only(make_issuer, enterprise_root):
    issuer = make_issuer()
    issued = await issuer.issue(request(make_csr(HOST)[0]))
    await issuer.revoke(
        RevokeRequest(
            serial=issued.serial.upper(),
            certificate_pem=issued.certificate_pem,
            reason=RevocationReason.KEY_COMPROMISE,
        )
    )

    foreign = enterprise_root.issue(HOST)
    with pytest.raises(RejectedError, match="not issued by this CA"):
        await issuer.revoke(
            RevokeRequest(serial=foreign.serial, certificate_pem=foreign.certificate_pem)
        )
    with pytest.raises(RejectedError, match="does not match"):
        await issuer.revoke(RevokeRequest(serial="01", certificate_pem=issued.certificate_pem))
    with pytest.raises(RejectedError, match="hexadecimal"):
        await issuer.revoke(RevokeRequest(serial="xyz", certificate_pem=issued.certificate_pem))


async def test_revoke_rejects_a_same_named_impostor_ca(make_issuer):
    # Two generated roots with the same name: the signature, not the name, decides.
    ours = make_issuer(common_name="Same Name")
    theirs = make_issuer(common_name="Same Name")
    issued = await theirs.issue(request(make_csr(HOST)[0]))
    with pytest.raises(RejectedError, match="not issued by this CA"):
        await ours.revoke(
            RevokeRequest(serial=issued.serial, certificate_pem=issued.certificate_pem)
        )


@pytest.mark.parametrize("mode", ["self-signed", "sub-ca"])
async def test_crl_verifies_with_openssl_and_lists_reasons(
    mode, make_issuer, enterprise_root, openssl, tmp_path
):
    issuer = make_issuer(sub_ca_config(enterprise_root) if mode == "sub-ca" else None)
    csr_pem = make_csr(HOST)[0]
    issued = [await issuer.issue(request(csr_pem)) for _ in range(3)]
    now = datetime.now(UTC).replace(microsecond=0)
    reasons = [
        RevocationReason.KEY_COMPROMISE,
        RevocationReason.SUPERSEDED,
        RevocationReason.UNSPECIFIED,
    ]
    der = await issuer.sign_crl(
        CrlRequest(
            crl_number=42,
            this_update=now,
            next_update=now + timedelta(hours=24),
            entries=tuple(
                CrlEntry(serial=c.serial, revoked_at=now - timedelta(hours=i), reason=r)
                for i, (c, r) in enumerate(zip(issued, reasons, strict=True))
            ),
        )
    )
    ca_pem = (await issuer.ca_certificates())[0]
    ca = load_certificate(ca_pem)
    crl_path = tmp_path / "ca.crl"
    crl_path.write_bytes(der)

    checked = openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        crl_path,
        "-CAfile",
        write(tmp_path / "ca.pem", [ca_pem]),
        "-noout",
    )
    assert checked.returncode == 0, checked.stderr
    assert "verify OK" in checked.stdout + checked.stderr
    text = openssl("crl", "-inform", "DER", "-in", crl_path, "-noout", "-text").stdout
    listed = {
        int(line.split(":", 1)[1].strip(), 16)
        for line in text.splitlines()
        if line.strip().startswith("Serial Number:")
    }
    assert listed == {int(c.serial, 16) for c in issued}
    assert "Key Compromise" in text
    assert "Superseded" in text

    crl = x509.load_der_x509_crl(der)
    assert crl.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public_key)
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + timedelta(hours=24)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert (
        crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(ca, x509.SubjectKeyIdentifier).value.digest
    )
    for cert, reason in zip(issued, reasons, strict=True):
        entry = crl.get_revoked_certificate_by_serial_number(int(cert.serial, 16))
        assert entry is not None
        if reason is RevocationReason.UNSPECIFIED:
            with pytest.raises(x509.ExtensionNotFound):
                entry.extensions.get_extension_for_class(x509.CRLReason)
        else:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            assert flag.name == reason.name.lower()


async def test_empty_and_large_crls(make_issuer):
    issuer = make_issuer()
    now = datetime.now(UTC).replace(microsecond=0)
    empty = x509.load_der_x509_crl(
        await issuer.sign_crl(
            CrlRequest(crl_number=1, this_update=now, next_update=now + timedelta(days=1))
        )
    )
    assert len(empty) == 0
    entries = tuple(CrlEntry(serial=format(n, "x"), revoked_at=now) for n in range(1, 20_001))
    large = x509.load_der_x509_crl(
        await issuer.sign_crl(
            CrlRequest(
                crl_number=2, this_update=now, next_update=now + timedelta(days=1), entries=entries
            )
        )
    )
    assert len(large) == 20_000


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"crl_number": -1}, "crl_number"),
        ({"crl_number": 2**159}, "crl_number"),
        ({"next_update_offset": timedelta(0)}, "next_update"),
        ({"entries": (CrlEntry(serial="0a", revoked_at=datetime.now(UTC)),) * 2}, "listed twice"),
        (
            {
                "entries": (
                    CrlEntry(
                        serial="0a",
                        revoked_at=datetime.now(UTC),
                        reason=RevocationReason.REMOVE_FROM_CRL,
                    ),
                )
            },
            "delta CRLs",
        ),
        ({"entries": (CrlEntry(serial="zz", revoked_at=datetime.now(UTC)),)}, "hexadecimal"),
    ],
)
async def test_bad_crl_requests_are_rejected(make_issuer, fields, message):
    now = datetime.now(UTC)
    offset = fields.pop("next_update_offset", timedelta(days=1))
    values = {"crl_number": 1, "this_update": now, "next_update": now + offset, **fields}
    with pytest.raises(RejectedError, match=message):
        await make_issuer().sign_crl(CrlRequest(**values))


async def test_ca_without_crl_sign_cannot_sign_crls(make_issuer, enterprise_root):
    issuer = make_issuer(sub_ca_config(enterprise_root, crl_sign=False))
    await issuer.issue(request(make_csr(HOST)[0]))  # issuing still works
    now = datetime.now(UTC)
    with pytest.raises(ConfigurationError, match="cRLSign"):
        await issuer.sign_crl(
            CrlRequest(crl_number=1, this_update=now, next_update=now + timedelta(days=1))
        )


# -- persistence of the generated root -----------------------------------------------------------


async def test_two_instances_sharing_state_use_one_root(make_issuer, openssl, tmp_path):
    state = MemoryStateStore()
    first = make_issuer(state=state, common_name="Shared Root", organization="Example Org")
    second = make_issuer(state=state, common_name="Shared Root", organization="Example Org")
    leaf_one = await first.issue(request(make_csr(HOST)[0]))
    leaf_two = await second.issue(request(make_csr(HOST)[0]))

    assert leaf_one.chain_pem == leaf_two.chain_pem
    root = load_certificate(leaf_one.chain_pem[0])
    assert root.subject.rfc4514_string() == "CN=Shared Root,O=Example Org"
    openssl_verify(openssl, tmp_path, leaf_one.chain_pem[0], (), leaf_two.certificate_pem)

    stored = msgspec.json.decode(state.data[ROOT_STATE_KEY])
    assert set(stored) == {"version", "key_pem", "certificate_pem"}
    assert "PRIVATE KEY" in stored["key_pem"]
    assert load_certificate(stored["certificate_pem"]) == root


async def test_root_is_a_proper_ca(make_issuer):
    clock = ManualClock(datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC))
    issuer = make_issuer(clock=clock, ca_validity_days=1000, ca_key_type=KeyType.ECDSA_P384)
    (root_pem,) = await issuer.ca_certificates()
    root = load_certificate(root_pem)
    assert root.issuer == root.subject
    assert ext(root, x509.BasicConstraints).critical
    assert ext(root, x509.BasicConstraints).value.ca
    usage = ext(root, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.not_valid_before_utc == clock.now - timedelta(minutes=1)
    assert root.not_valid_after_utc == root.not_valid_before_utc + timedelta(days=1000)
    root.verify_directly_issued_by(root)


async def test_concurrent_first_use_generates_one_root(make_issuer):
    class CountingStore(MemoryStateStore):
        writes = 0

        async def add(self, key: str, value: bytes) -> bool:
            self.writes += 1
            await asyncio.sleep(0)  # yield, as a database write would
            return await super().add(key, value)

    state = CountingStore()
    issuer = make_issuer(state=state)
    csr_pem = make_csr(HOST)[0]
    results = await asyncio.gather(*(issuer.issue(request(csr_pem)) for _ in range(20)))
    assert state.writes == 1
    assert len({r.chain_pem for r in results}) == 1


async def test_replica_that_lost_the_race_adopts_the_stored_root(make_issuer):
    """Two replicas generating at once: the first atomic add wins and the other adopts it."""
    other_replica = MemoryStateStore()
    await make_issuer(state=other_replica).ca_certificates()
    winning_root = other_replica.data[ROOT_STATE_KEY]

    class RacingStore(MemoryStateStore):
        async def add(self, key: str, value: bytes) -> bool:
            self.data[key] = winning_root  # the other replica's add lands just before ours
            return await super().add(key, value)

    store = RacingStore()
    chain = await make_issuer(state=store).ca_certificates()
    assert chain == await make_issuer(state=other_replica).ca_certificates()
    assert store.data[ROOT_STATE_KEY] == winning_root


async def test_a_damaged_stored_root_is_reported_not_replaced(make_issuer):
    state = MemoryStateStore({ROOT_STATE_KEY: b"{not json"})
    issuer = make_issuer(state=state)
    with pytest.raises(ConfigurationError, match="damaged"):
        await issuer.issue(request(make_csr(HOST)[0]))
    assert state.data[ROOT_STATE_KEY] == b"{not json"
    result = await issuer.check()
    assert not result.ok
    assert "damaged" in result.message


async def test_changing_root_settings_later_keeps_the_existing_root(make_issuer):
    state = MemoryStateStore()
    before = await make_issuer(state=state, common_name="Original").ca_certificates()
    after = make_issuer(state=state, common_name="Renamed", ca_key_type=KeyType.ED25519)
    assert await after.ca_certificates() == before
    result = await after.check()
    assert result.ok
    assert result.details["subject"] == "CN=Original"
    assert result.details["key_type"] == "ecdsa-p256"


async def test_check_generates_and_reports_the_root(make_issuer):
    state = MemoryStateStore()
    result = await make_issuer(state=state, ca_validity_days=3650).check()
    assert result.ok
    assert ROOT_STATE_KEY in state.data
    assert result.details["subject"] == "CN=certctl Local Root CA"
    assert "valid until" in result.message
    assert "cut short" not in result.message
    short = await make_issuer(ca_validity_days=30).check()
    assert "cut short" in short.message


async def test_ca_types_are_what_was_asked(make_issuer):
    expected = {
        KeyType.RSA_2048: (rsa.RSAPublicKey, 2048),
        KeyType.ED25519: (ed25519.Ed25519PublicKey, None),
        KeyType.ECDSA_P256: (ec.EllipticCurvePublicKey, 256),
    }
    for key_type, (cls, size) in expected.items():
        (root_pem,) = await make_issuer(ca_key_type=key_type).ca_certificates()
        key = load_certificate(root_pem).public_key()
        assert isinstance(key, cls)
        if size is not None:
            assert key.key_size == size  # type: ignore[union-attr]


async def test_the_openssl_check_is_not_vacuous(make_issuer, openssl, tmp_path):
    issued = await make_issuer().issue(request(make_csr(HOST)[0]))
    stranger = (await make_issuer().ca_certificates())[0]
    with pytest.raises(AssertionError, match="unable to get local issuer certificate"):
        openssl_verify(openssl, tmp_path, stranger, (), issued.certificate_pem)
