"""The server's own HTTPS certificate: generated on first start, checked on every start."""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certctl.settings import Settings

__all__ = ["TLSBundleError", "client_trust_bundles", "ensure_server_certificate"]


class TLSBundleError(RuntimeError):
    """The configured certificate and key cannot serve HTTPS; the message says why."""


def _generate(cert_path: Path, key_path: Path, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for value in {host, "127.0.0.1", "::1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            names.append(x509.DNSName(value))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"certctl server ({host})")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=397))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _check(cert_path: Path, key_path: Path) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSBundleError(f"cannot read server certificate {cert_path}: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TLSBundleError(f"cannot read server key {key_path}: {exc}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise TLSBundleError(f"server key {key_path} does not match certificate {cert_path}")
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise TLSBundleError(
            f"server certificate {cert_path} expired on {cert.not_valid_after_utc}"
        )


def ensure_server_certificate(settings: Settings) -> tuple[Path, Path]:
    """Return (certificate, key) paths, generating a self-signed pair on first start."""
    if settings.tls_cert_path and settings.tls_key_path:
        cert_path, key_path = Path(settings.tls_cert_path), Path(settings.tls_key_path)
    else:
        base = Path(settings.data_dir) / "tls"
        cert_path, key_path = base / "server.crt", base / "server.key"
        if not cert_path.exists() or not key_path.exists():
            _generate(cert_path, key_path, settings.server_host)
    _check(cert_path, key_path)
    return cert_path, key_path


def client_trust_bundles(settings: Settings) -> tuple[Path, ...]:
    """Every client-CA bundle an mTLS route of this server trusts (EST and SCEP profiles).

    Non-empty turns on client-certificate requests at the listener (see certctl.listener_tls).
    """
    bundles: list[Path] = [*settings.est.mtls_trust_bundles]
    bundles += [Path(p.mtls_trust_bundle_path) for p in settings.scep.mtls_profiles()]
    return tuple(dict.fromkeys(bundles))
