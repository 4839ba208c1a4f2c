"""The server's own HTTPS certificate: generated once, then checked on every start."""

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl.settings import Settings, SettingsError
from certctl.tls import TLSBundleError, ensure_server_certificate

ENCRYPTION_KEY = "tls-test-encryption-key-0123456789abcdef"


def settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"), config_encryption_key=ENCRYPTION_KEY, **overrides
    )


def write_pair(
    directory: Path,
    name: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate and its key as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_first_start_generates_a_self_signed_certificate(tmp_path):
    cert_path, key_path = ensure_server_certificate(settings(tmp_path))

    assert cert_path == tmp_path / "data" / "tls" / "server.crt"
    assert key_path == tmp_path / "data" / "tls" / "server.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    addresses = san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in addresses
    assert ipaddress.ip_address("::1") in addresses
    assert cert.not_valid_before_utc <= datetime.now(UTC) < cert.not_valid_after_utc


def test_generated_certificate_names_the_configured_host(tmp_path):
    cert_path, _ = ensure_server_certificate(settings(tmp_path, server_host="certctl.internal"))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "certctl.internal" in san.get_values_for_type(x509.DNSName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_second_start_keeps_the_generated_pair(tmp_path):
    cert_path, key_path = ensure_server_certificate(settings(tmp_path))
    cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    assert ensure_server_certificate(settings(tmp_path)) == (cert_path, key_path)
    assert cert_path.read_bytes() == cert_pem
    assert key_path.read_bytes() == key_pem


def test_configured_pair_is_used_as_is(tmp_path):
    cert_path, key_path = write_pair(tmp_path / "pki", "mine")
    s = settings(tmp_path, tls_cert_path=str(cert_path), tls_key_path=str(key_path))
    assert ensure_server_certificate(s) == (cert_path, key_path)
    assert not (tmp_path / "data" / "tls").exists()


def test_mismatched_key_and_certificate(tmp_path):
    cert_a, _ = write_pair(tmp_path / "pki", "a")
    _, key_b = write_pair(tmp_path / "pki", "b")
    s = settings(tmp_path, tls_cert_path=str(cert_a), tls_key_path=str(key_b))
    with pytest.raises(TLSBundleError, match="does not match"):
        ensure_server_certificate(s)


def test_expired_certificate(tmp_path):
    now = datetime.now(UTC)
    cert_path, key_path = write_pair(
        tmp_path / "pki",
        "old",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=1),
    )
    s = settings(tmp_path, tls_cert_path=str(cert_path), tls_key_path=str(key_path))
    with pytest.raises(TLSBundleError, match="expired"):
        ensure_server_certificate(s)


def test_expired_generated_certificate_is_not_silently_replaced(tmp_path):
    now = datetime.now(UTC)
    tls_dir = tmp_path / "data" / "tls"
    write_pair(
        tls_dir, "server", not_before=now - timedelta(days=400), not_after=now - timedelta(days=1)
    )
    expired = (tls_dir / "server.crt").read_bytes()
    with pytest.raises(TLSBundleError, match="expired"):
        ensure_server_certificate(settings(tmp_path))
    assert (tls_dir / "server.crt").read_bytes() == expired


@pytest.mark.parametrize(
    ("cert_bytes", "key_bytes", "which"),
    [
        (b"not a certificate", None, "certificate"),
        (None, b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "key"),
        (b"", None, "certificate"),
        (None, b"", "key"),
    ],
)
def test_garbage_files(tmp_path, cert_bytes, key_bytes, which):
    cert_path, key_path = write_pair(tmp_path / "pki", "good")
    if cert_bytes is not None:
        cert_path.write_bytes(cert_bytes)
    if key_bytes is not None:
        key_path.write_bytes(key_bytes)
    s = settings(tmp_path, tls_cert_path=str(cert_path), tls_key_path=str(key_path))
    with pytest.raises(TLSBundleError, match=f"cannot read server {which}"):
        ensure_server_certificate(s)


def test_certificate_where_the_key_belongs(tmp_path):
    cert_path, _ = write_pair(tmp_path / "pki", "good")
    s = settings(tmp_path, tls_cert_path=str(cert_path), tls_key_path=str(cert_path))
    with pytest.raises(TLSBundleError, match="cannot read server key"):
        ensure_server_certificate(s)


def test_missing_configured_files_are_not_generated(tmp_path):
    s = settings(
        tmp_path,
        tls_cert_path=str(tmp_path / "nope.crt"),
        tls_key_path=str(tmp_path / "nope.key"),
    )
    with pytest.raises(TLSBundleError, match=r"nope\.crt"):
        ensure_server_certificate(s)
    assert not (tmp_path / "nope.crt").exists()
    assert not (tmp_path / "nope.key").exists()


def test_key_message_never_contains_key_material(tmp_path):
    cert_path, key_path = write_pair(tmp_path / "pki", "good")
    secret_looking = (
        b"-----BEGIN PRIVATE KEY-----\nU0VDUkVULU1BVEVSSUFM\n-----END PRIVATE KEY-----\n"
    )
    key_path.write_bytes(secret_looking)
    s = settings(tmp_path, tls_cert_path=str(cert_path), tls_key_path=str(key_path))
    with pytest.raises(TLSBundleError) as info:
        ensure_server_certificate(s)
    assert "U0VDUkVULU1BVEVSSUFM" not in str(info.value)


@pytest.mark.parametrize(
    "env",
    [
        {"CERTCTL_SERVER_TLS_CERT_PATH": "/x/server.crt"},
        {"CERTCTL_SERVER_TLS_KEY_PATH": "/x/server.key"},
    ],
)
def test_only_one_of_the_two_paths_is_a_settings_error(env):
    with pytest.raises(SettingsError, match="must be set together"):
        Settings.from_env({"CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY, **env})
