"""EST against a real ``certctl serve`` with real clients: curl for HTTP, openssl for the PKI.

There is no packaged EST client (no libest on Debian or PyPI), so this is the RFC 7030 recipe
an operator would script: cacerts parsed by ``openssl pkcs7``, simpleenroll with HTTP Basic,
simplereenroll over mTLS with ``curl --cert`` of the current certificate (the real listener
verifies it, then the handler against the profile's own bundle), serverkeygen's multipart
answer, and RFC 9266 channel binding with ``openssl s_client -keymatexport`` sending a CSR
made on the very connection it binds.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import Server, require, run, start_servers

from certctl_sdk.models import SubjectAltNames
from certctl_sdk.testing import TestCA

PASSWORD = "enroll-secret-123"


@dataclass
class EstServer:
    server: Server
    listener_ca: Path
    issuer_ca: Path
    work: Path

    def curl(self, path: str, *args: str) -> bytes:
        command = [require("curl"), "-sS", "--fail-with-body", "--cacert", str(self.listener_ca),
                   *args, f"{self.server.url}{path}"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")
        return result.stdout


@pytest.fixture
def est_server(database_url: str, tmp_path: Path) -> Iterator[EstServer]:
    require("curl")
    listener_ca = TestCA.create(common_name="EST test listener CA")
    leaf = listener_ca.issue(
        "localhost", sans=SubjectAltNames(dns=("localhost",), ip=("127.0.0.1",))
    )
    for name, text in {
        "listener-ca.pem": listener_ca.certificate_pem,
        "listener.pem": leaf.certificate_pem,
        "listener.key": leaf.key_pem,
    }.items():
        (tmp_path / name).write_text(text)  # fmt: skip
    bundle = tmp_path / "device-cas.pem"
    bundle.write_text(TestCA.create(common_name="placeholder").certificate_pem)
    (server,) = start_servers(
        1, database_url, tmp_path / "certctl",
        CERTCTL_SERVER_TLS_CERT_PATH=str(tmp_path / "listener.pem"),
        CERTCTL_SERVER_TLS_KEY_PATH=str(tmp_path / "listener.key"),
        CERTCTL_RATE_LIMIT_ENABLED="false",
        CERTCTL_EST_ENABLED="true",
        CERTCTL_EST_PROFILES="dev,bound",
        CERTCTL_EST_PROFILE_DEV_PROFILE_ID="est-devices",
        CERTCTL_EST_PROFILE_DEV_ALLOWED_AUTH_MODES="mtls,basic",
        CERTCTL_EST_PROFILE_DEV_ENROLLMENT_USERNAME="device",
        CERTCTL_EST_PROFILE_DEV_ENROLLMENT_PASSWORD=PASSWORD,
        CERTCTL_EST_PROFILE_DEV_MTLS_ENABLED="true",
        CERTCTL_EST_PROFILE_DEV_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH=str(bundle),
        CERTCTL_EST_PROFILE_DEV_SERVERKEYGEN_ENABLED="true",
        CERTCTL_EST_PROFILE_BOUND_PROFILE_ID="est-devices",
        CERTCTL_EST_PROFILE_BOUND_ALLOWED_AUTH_MODES="mtls",
        CERTCTL_EST_PROFILE_BOUND_MTLS_ENABLED="true",
        CERTCTL_EST_PROFILE_BOUND_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH=str(bundle),
        CERTCTL_EST_PROFILE_BOUND_CHANNEL_BINDING_REQUIRED="true",
    )  # fmt: skip
    try:
        api = server.client
        r = api.post("/api/v1/issuers", json={"name": "est-ca", "type": "local", "config": {}})
        assert r.status_code == 201, r.text
        issuer = r.json()["id"]
        r = api.post("/api/v1/profiles", json={"name": "est-devices", "issuer_id": issuer,
                                               "allowed_ekus": ["clientAuth"]})  # fmt: skip
        assert r.status_code == 201, r.text
        der = tmp_path / "issuer-ca.der"
        der.write_bytes(api.get(f"/.well-known/pki/ca/{issuer}").content)
        issuer_ca = tmp_path / "issuer-ca.pem"
        run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-out", str(issuer_ca)])
        # The devices' CA is certctl's own: the operator puts it in the bundle and reloads.
        bundle.write_text(issuer_ca.read_text())
        r = api.post("/api/v1/admin/est/reload-trust")
        assert r.status_code == 200 and r.json()["errors"] == {}, r.text
        assert r.json()["listener_cas"] == 1, r.text
        yield EstServer(server, tmp_path / "listener-ca.pem", issuer_ca, tmp_path)
    finally:
        server.stop()


def _csr(work: Path, name: str, cn: str, *extra: str) -> Path:
    """openssl req: a P-256 key and a base64 DER CSR (``name``.key, ``name``.b64)."""
    der = work / f"{name}.der"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(work / f"{name}.key"), "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn}", *extra, "-outform", "DER", "-out", str(der)])  # fmt: skip
    b64 = work / f"{name}.b64"
    b64.write_bytes(base64.encodebytes(der.read_bytes()))
    return b64


def _pkcs7_to_pem(work: Path, body: bytes, name: str) -> Path:
    der = work / f"{name}.p7"
    der.write_bytes(base64.b64decode(body))
    out = work / f"{name}.pem"
    run(["openssl", "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs", "-out", str(out)])
    return out


def _field(cert: Path, what: str) -> str:
    return run(["openssl", "x509", "-in", str(cert), "-noout", f"-{what}"]).strip()


PKCS10 = ["-H", "Content-Type: application/pkcs10", "-H", "Content-Transfer-Encoding: base64"]


def test_est_with_curl_and_openssl(est_server: EstServer) -> None:
    """One server per database (each start costs seconds): every flow runs against it."""
    _enroll_reenroll_and_serverkeygen(est_server)
    _channel_binding_on_the_connection_it_binds(est_server)


def _enroll_reenroll_and_serverkeygen(est_server: EstServer) -> None:
    e, work = est_server, est_server.work
    cacerts = _pkcs7_to_pem(work, e.curl("/.well-known/est/dev/cacerts"), "cacerts")
    assert _field(cacerts, "fingerprint") == _field(e.issuer_ca, "fingerprint")

    csr = _csr(work, "dev1", "dev1.example.com")
    body = e.curl("/.well-known/est/dev/simpleenroll", "-u", f"device:{PASSWORD}", *PKCS10,
                  "--data-binary", f"@{csr}")  # fmt: skip
    cert = _pkcs7_to_pem(work, body, "dev1")
    run(["openssl", "verify", "-CAfile", str(e.issuer_ca), str(cert)])
    assert "dev1.example.com" in _field(cert, "subject")

    renew = _csr(work, "dev1-renew", "dev1.example.com")
    body = e.curl("/.well-known/est-mtls/dev/simplereenroll", "--cert", str(cert),
                  "--key", str(work / "dev1.key"), *PKCS10, "--data-binary", f"@{renew}")  # fmt: skip
    renewed = _pkcs7_to_pem(work, body, "dev1-renewed")
    run(["openssl", "verify", "-CAfile", str(e.issuer_ca), str(renewed)])
    assert _field(renewed, "serial") != _field(cert, "serial")
    assert _field(renewed, "subject") == _field(cert, "subject")
    # The renewed-away certificate no longer renews; without a client certificate, no mTLS.
    again = _csr(work, "dev1-again", "dev1.example.com")
    refused = subprocess.run(
        [require("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
         str(e.listener_ca), "--cert", str(cert), "--key", str(work / "dev1.key"), *PKCS10,
         "--data-binary", f"@{again}", f"{e.server.url}/.well-known/est-mtls/dev/simplereenroll"],
        capture_output=True, timeout=60, check=False, text=True,
    )  # fmt: skip
    assert refused.stdout == "403", refused

    gen = _csr(work, "gen", "gen.example.com")
    response = work / "serverkeygen.out"
    headers = e.curl("/.well-known/est/dev/serverkeygen", "-u", f"device:{PASSWORD}", *PKCS10,
                     "--data-binary", f"@{gen}", "-D", "-", "-o", str(response))  # fmt: skip
    content_type = re.search(rb"(?im)^content-type: (multipart/mixed;[^\r\n]+)", headers)
    assert content_type, headers
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.group(1) + b"\r\n\r\n" + response.read_bytes(),
        policy=email.policy.default,
    )
    key_part, cert_part = message.iter_parts()
    assert key_part.get_content_type() == "application/pkcs8"
    (work / "gen-key.der").write_bytes(key_part.get_payload(decode=True))
    key_pub = run(["openssl", "pkey", "-inform", "DER", "-in", str(work / "gen-key.der"),
                   "-pubout"])  # fmt: skip
    gen_cert = _pkcs7_to_pem(work, base64.b64encode(cert_part.get_payload(decode=True)), "gen")
    assert run(["openssl", "x509", "-in", str(gen_cert), "-noout", "-pubkey"]) == key_pub


def _bound_enrollment(e: EstServer, cert: Path, key: Path, work: Path) -> tuple[str, bytes]:
    """One TLS 1.3 connection: read its tls-exporter, make a CSR carrying it, send it there."""
    process = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{e.server.port}", "-servername",
         "localhost", "-CAfile", str(e.listener_ca), "-cert", str(cert), "-key", str(key),
         "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32",
         "-ign_eof", "-nocommands"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    while b"Keying material: " not in seen or not seen.rstrip().endswith(b"---"):
        line = process.stdout.readline()
        assert line and time.monotonic() < deadline, seen.decode(errors="replace")
        seen += line
        if re.search(rb"Keying material: [0-9A-F]{64}", seen) and b"Verify return code" in seen:
            break
    exported = bytes.fromhex(re.search(rb"Keying material: ([0-9A-F]{64})", seen).group(1).decode())
    config = work / "cb.cnf"
    config.write_text(
        "[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=cb.example.com\n"
        f"[attrs]\nchallengePassword={base64.b64encode(exported).decode()}\n"
    )
    der = work / "cb-bound.der"
    run(["openssl", "req", "-new", "-config", str(config), "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(work / "cb-bound.key"),
         "-outform", "DER", "-out", str(der)])  # fmt: skip
    body = base64.encodebytes(der.read_bytes())
    request = (
        "POST /.well-known/est-mtls/bound/simpleenroll HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/pkcs10\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    output, _ = process.communicate(request, timeout=60)
    # s_client interleaves its own notes (session tickets, "closed") with the response.
    start = output.find(b"HTTP/1.1 ")
    head, _, rest = output[start:].partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: (\d+)", head)
    assert start >= 0 and length, output.decode(errors="replace")
    return head[9:12].decode(), rest[: int(length.group(1))]


def _channel_binding_on_the_connection_it_binds(est_server: EstServer) -> None:
    """RFC 9266 end to end: the CSR is made on, and sent over, the connection it binds."""
    e, work = est_server, est_server.work
    csr = _csr(work, "cb", "cb.example.com")
    body = e.curl("/.well-known/est/dev/simpleenroll", "-u", f"device:{PASSWORD}", *PKCS10,
                  "--data-binary", f"@{csr}")  # fmt: skip
    cert, key = _pkcs7_to_pem(work, body, "cb"), work / "cb.key"
    plain = _csr(work, "cb-plain", "cb.example.com")

    def status(*args: str) -> str:
        result = subprocess.run(
            [require("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
             str(e.listener_ca), "--cert", str(cert), "--key", str(key), *PKCS10, *args,
             "--data-binary", f"@{plain}", f"{e.server.url}/.well-known/est-mtls/bound/simpleenroll"],
            capture_output=True, timeout=60, check=False, text=True,
        )  # fmt: skip
        return result.stdout

    assert status() == "400"  # TLS 1.3, but the CSR carries no binding
    assert status("--tls-max", "1.2") == "426"
    code, payload = _bound_enrollment(e, cert, key, work)
    assert code == "200", payload
    issued = _pkcs7_to_pem(work, payload.strip(), "cb-bound")
    run(["openssl", "verify", "-CAfile", str(e.issuer_ca), str(issued)])
