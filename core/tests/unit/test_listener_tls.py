"""The listener's mTLS: client certificates and tls-exporter values reach the app, from real clients.

A real uvicorn server (in a thread) with :class:`ListenerTLS` and the TLS-aware protocol serves
an app that echoes :func:`peer_tls`; ``curl`` presents client certificates and ``openssl
s_client`` prints its own side of the RFC 9266 exporter to compare.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers import free_port
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from certctl.lib.peer_tls import peer_tls, tls_aware_protocol
from certctl.listener_tls import ListenerTLS
from certctl.tls import TLSBundleError

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None,
    reason="needs the curl and openssl command-line clients",
)


@dataclass
class Pair:
    cert: Path
    key: Path
    der: bytes


def _issue(
    directory: Path, name: str, *, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = ca if ca else (None, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if ca is None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    pair = Pair(
        directory / f"{name}.pem",
        directory / f"{name}.key",
        cert.public_bytes(serialization.Encoding.DER),
    )
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair, cert, key


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    peer = peer_tls(scope)
    body = json.dumps(
        None
        if peer is None
        else {
            "version": peer.version,
            "cert": peer.client_certificate.hex() if peer.client_certificate else None,
            "binding": peer.channel_binding.hex() if peer.channel_binding else None,
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Listener:
    url: str
    port: int
    tls: ListenerTLS
    server_cert: Path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Pair]:
    server, _, _ = _issue(tmp_path, "localhost", ca=None)
    ca_a, ca_a_cert, ca_a_key = _issue(tmp_path, "ca-a", ca=None)
    ca_b, ca_b_cert, ca_b_key = _issue(tmp_path, "ca-b", ca=None)
    client_a, _, _ = _issue(tmp_path, "client-a", ca=(ca_a_cert, ca_a_key))
    client_b, _, _ = _issue(tmp_path, "client-b", ca=(ca_b_cert, ca_b_key))
    return {"server": server, "ca-a": ca_a, "ca-b": ca_b, "a": client_a, "b": client_b}


def _serve(tls: ListenerTLS) -> Iterator[Listener]:
    port = free_port()
    config = uvicorn.Config(
        _echo,
        host="127.0.0.1",
        port=port,
        ssl_context_factory=lambda _config, _default: tls.context,
        http=tls_aware_protocol(AutoHTTPProtocol),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "listener did not start"
        time.sleep(0.05)
    try:
        yield Listener(f"https://127.0.0.1:{port}/", port, tls, Path())
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def bundle(tmp_path: Path, pki: dict[str, Pair]) -> Path:
    path = tmp_path / "bundle.pem"
    path.write_bytes(pki["ca-a"].cert.read_bytes())
    return path


@pytest.fixture
def mtls(pki: dict[str, Pair], bundle: Path) -> Iterator[Listener]:
    tls = ListenerTLS(pki["server"].cert, pki["server"].key, lambda: [bundle])
    yield from _serve(tls)


@pytest.fixture
def plain(pki: dict[str, Pair]) -> Iterator[Listener]:
    tls = ListenerTLS(pki["server"].cert, pki["server"].key, list)
    yield from _serve(tls)


def _curl(listener: Listener, ca: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(ca), *extra, listener.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _peer(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_without_mtls_profiles_no_certificate_is_asked_for(
    plain: Listener, pki: dict[str, Pair]
) -> None:
    assert plain.tls.mtls is False
    assert plain.tls.context.verify_mode.name == "CERT_NONE"
    peer = _peer(_curl(plain, pki["server"].cert))
    assert peer["version"] == "TLSv1.3"
    assert peer["cert"] is None
    assert len(bytes.fromhex(peer["binding"])) == 32
    assert plain.tls.reload() == 0


def test_trusted_client_certificate_reaches_the_app(mtls: Listener, pki: dict[str, Pair]) -> None:
    server = pki["server"].cert
    with_cert = _peer(_curl(mtls, server, "--cert", str(pki["a"].cert), "--key", str(pki["a"].key)))
    assert bytes.fromhex(with_cert["cert"]) == pki["a"].der
    # Optional: a client without a certificate is served, and sees no certificate.
    assert _peer(_curl(mtls, server))["cert"] is None


def test_untrusted_client_certificate_fails_the_handshake(
    mtls: Listener, pki: dict[str, Pair]
) -> None:
    result = _curl(
        mtls, pki["server"].cert, "--cert", str(pki["b"].cert), "--key", str(pki["b"].key)
    )
    # Under TLS 1.3 the client learns of the rejection after its Finished: an alert or EOF.
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""


def test_reload_swaps_the_trusted_cas(mtls: Listener, pki: dict[str, Pair], bundle: Path) -> None:
    server = pki["server"].cert
    b_args = ("--cert", str(pki["b"].cert), "--key", str(pki["b"].key))
    a_args = ("--cert", str(pki["a"].cert), "--key", str(pki["a"].key))
    bundle.write_bytes(pki["ca-b"].cert.read_bytes())
    assert mtls.tls.reload() == 1
    assert bytes.fromhex(_peer(_curl(mtls, server, *b_args))["cert"]) == pki["b"].der
    assert _curl(mtls, server, *a_args).returncode != 0
    # A broken bundle is refused and the trust in place stays.
    bundle.write_text("not a certificate")
    with pytest.raises(TLSBundleError, match="not PEM certificates"):
        mtls.tls.reload()
    assert bytes.fromhex(_peer(_curl(mtls, server, *b_args))["cert"]) == pki["b"].der


def test_channel_binding_matches_the_clients_exporter(mtls: Listener, pki: dict[str, Pair]) -> None:
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{mtls.port}",
            "-ign_eof",
            "-CAfile",
            str(pki["server"].cert),
            "-cert",
            str(pki["a"].cert),
            "-key",
            str(pki["a"].key),
            "-keymatexport",
            "EXPORTER-Channel-Binding",
            "-keymatexportlen",
            "32",
        ],
        input=request,
        capture_output=True,
        timeout=30,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    exported = re.search(r"Keying material: ([0-9A-F]{64})", output)
    assert exported, output
    echoed = re.search(r'\{"version".*?\}', output)
    assert echoed, output
    body = json.loads(echoed.group(0))
    assert body["binding"] == exported.group(1).lower()
    assert bytes.fromhex(body["cert"]) == pki["a"].der


def test_tls12_has_no_channel_binding(mtls: Listener, pki: dict[str, Pair]) -> None:
    peer = _peer(_curl(mtls, pki["server"].cert, "--tls-max", "1.2"))
    assert peer["version"] == "TLSv1.2"
    assert peer["binding"] is None


def test_a_bad_bundle_refuses_to_start(tmp_path: Path, pki: dict[str, Pair]) -> None:
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_bytes(pki["a"].cert.read_bytes())
    with pytest.raises(TLSBundleError, match="non-CA certificate"):
        ListenerTLS(pki["server"].cert, pki["server"].key, lambda: [leaf_only])
    with pytest.raises(TLSBundleError, match="cannot read"):
        ListenerTLS(pki["server"].cert, pki["server"].key, lambda: [tmp_path / "missing.pem"])
