"""Real SCEP clients against a real ``certctl serve`` over HTTPS.

micromdm's ``scepclient`` (Debian ``scep``) enrols with a challenge password and renews with the
certificate it got (RenewalReq); certmonger's ``scep-submit`` reads GetCACaps and GetCACert.
The Go client trusts the listener through ``SSL_CERT_FILE``; it sends single-DES envelopes,
so the server runs with ``CERTCTL_SCEP_ALLOW_SINGLE_DES=true``.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from servers import Server, require, run, start_servers

from certctl_sdk.models import KeyType, SubjectAltNames
from certctl_sdk.testing import TestCA

CHALLENGE = "integration-scep-secret"


@dataclass
class ScepServer:
    server: Server
    listener_ca: Path
    ra_cert: Path
    url: str
    fleets: dict[str, tuple[Path, Path, Path]]
    """mTLS profile → (its client CA, a device certificate, its key)."""


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def scep_server(database_url: str, tmp_path: Path) -> Iterator[ScepServer]:
    listener_ca = TestCA.create(common_name="SCEP test listener CA")
    leaf = listener_ca.issue(
        "localhost", sans=SubjectAltNames(dns=("localhost",), ip=("127.0.0.1",))
    )
    ra = TestCA.create(key_type=KeyType.RSA_2048, common_name="SCEP RA issuer").issue(
        "certctl SCEP RA", key_type=KeyType.RSA_2048
    )
    d = tmp_path / "files"
    d.mkdir()
    ca_pem = _write(d / "listener-ca.pem", listener_ca.certificate_pem)
    cert_pem = _write(d / "listener.pem", leaf.certificate_pem)
    key_pem = _write(d / "listener.key", leaf.key_pem, 0o600)
    ra_cert = _write(d / "ra.pem", ra.certificate_pem)
    ra_key = _write(d / "ra.key", ra.key_pem, 0o600)
    fleets = {}
    for fleet in ("fleet", "other"):
        fleet_ca = TestCA.create(common_name=f"{fleet} device CA")
        device_cert = fleet_ca.issue(f"{fleet}-device")
        fleets[fleet] = (
            _write(d / f"{fleet}-ca.pem", fleet_ca.certificate_pem),
            _write(d / f"{fleet}-device.pem", device_cert.certificate_pem),
            _write(d / f"{fleet}-device.key", device_cert.key_pem, 0o600),
        )
    (server,) = start_servers(
        1,
        database_url,
        tmp_path / "certctl",
        CERTCTL_SERVER_TLS_CERT_PATH=str(cert_pem),
        CERTCTL_SERVER_TLS_KEY_PATH=str(key_pem),
        CERTCTL_RATE_LIMIT_ENABLED="false",
        CERTCTL_SCEP_ENABLED="true",
        CERTCTL_SCEP_ALLOW_SINGLE_DES="true",
        CERTCTL_SCEP_RA_CERT_PATH=str(ra_cert),
        CERTCTL_SCEP_RA_KEY_PATH=str(ra_key),
        CERTCTL_SCEP_PROFILES="devices,fleet,other",
        CERTCTL_SCEP_PROFILE_DEVICES_PROFILE_ID="scep-devices",
        CERTCTL_SCEP_PROFILE_DEVICES_CHALLENGE_PASSWORD=CHALLENGE,
        **{
            f"CERTCTL_SCEP_PROFILE_{fleet.upper()}_{name}": value
            for fleet, (ca, _, _) in fleets.items()
            for name, value in (
                ("PROFILE_ID", "scep-devices"),
                ("CHALLENGE_PASSWORD", CHALLENGE),
                ("MTLS_ENABLED", "true"),
                ("MTLS_CLIENT_CA_TRUST_BUNDLE_PATH", str(ca)),
            )
        },
    )
    try:
        r = server.client.post(
            "/api/v1/issuers",
            json={"name": "scep-ca", "type": "local", "config": {"ca_key_type": "rsa-2048"}},
        )
        assert r.status_code == 201, r.text
        r = server.client.post(
            "/api/v1/profiles", json={"name": "scep-devices", "issuer_id": r.json()["id"]}
        )
        assert r.status_code == 201, r.text
        yield ScepServer(server, ca_pem, ra_cert, f"{server.url}/scep/devices", fleets)
    finally:
        server.stop()


def _scepclient(scep: ScepServer, workdir: Path, *args: str, check: bool = True) -> str:
    binary = require("scepclient")
    command = [binary, "-server-url", scep.url, "-private-key", str(workdir / "key.pem"),
               "-certificate", str(workdir / "cert.pem"), "-cn", "device-1", *args]  # fmt: skip
    if check:
        return run(command, env={"SSL_CERT_FILE": str(scep.listener_ca)}, timeout=60)
    import subprocess

    result = subprocess.run(
        command, env={**os.environ, "SSL_CERT_FILE": str(scep.listener_ca)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _audit(scep: ScepServer, action: str) -> list[dict[str, object]]:
    r = scep.server.client.get("/api/v1/audit", params={"action": action, "per_page": 50})
    assert r.status_code == 200, r.text
    rows: list[dict[str, object]] = r.json()["data"]
    return rows


def test_real_clients(scep_server: ScepServer, tmp_path: Path) -> None:
    """One server for every client (each start costs seconds): enrol, renew, refusal, caps, mTLS."""
    _enrol_and_renew(scep_server, tmp_path)
    _wrong_challenge(scep_server, tmp_path)
    _certmonger(scep_server)
    _mtls(scep_server)


def _enrol_and_renew(scep_server: ScepServer, tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    _scepclient(scep_server, device, "-challenge", CHALLENGE)
    first = x509.load_pem_x509_certificate((device / "cert.pem").read_bytes())
    assert first.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "device-1"
    assert first.issuer.rfc4514_string().startswith("CN=")
    key = serialization.load_pem_private_key((device / "key.pem").read_bytes(), None)
    assert first.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert [e["outcome"] for e in _audit(scep_server, "scep_pkcsreq")] == ["success"]

    # The certificate file exists now: scepclient sends a RenewalReq signed with it.
    time.sleep(1.1)  # a later notBefore, so the two certificates differ in more than the serial
    _scepclient(scep_server, device)
    second = x509.load_pem_x509_certificate((device / "cert.pem").read_bytes())
    assert second.serial_number != first.serial_number
    assert second.issuer == first.issuer
    renewals = _audit(scep_server, "scep_renewalreq")
    assert [e["outcome"] for e in renewals] == ["success"]


def _wrong_challenge(scep_server: ScepServer, tmp_path: Path) -> None:
    device = tmp_path / "intruder"
    device.mkdir()
    output = _scepclient(scep_server, device, "-challenge", "not-the-secret", check=False)
    assert "failInfo" in output and "2" in output.split("failInfo")[-1], output
    assert not (device / "cert.pem").exists()
    refused = _audit(scep_server, "scep_pkcsreq")
    assert sorted(e["outcome"] for e in refused) == ["failure", "success"]  # after the enrolment


def _certmonger(scep_server: ScepServer) -> None:
    submit = require("/usr/lib/certmonger/scep-submit")
    caps = run([submit, "-u", scep_server.url, "-R", str(scep_server.listener_ca), "-c"])
    assert {"POSTPKIOperation", "SHA-256", "AES", "SCEPStandard", "Renewal"} <= set(caps.split())
    certs = run([submit, "-u", scep_server.url, "-R", str(scep_server.listener_ca), "-C"])
    blocks = [b for b in certs.split("-----END CERTIFICATE-----") if "BEGIN CERTIFICATE" in b]
    loaded = [x509.load_pem_x509_certificate((b.strip() + "\n-----END CERTIFICATE-----\n").encode())
              for b in blocks]  # fmt: skip
    ra = x509.load_pem_x509_certificate(scep_server.ra_cert.read_bytes())
    assert ra in loaded
    assert any(c.subject != ra.subject for c in loaded)  # the issuing CA is there too


def _mtls(scep_server: ScepServer) -> None:
    """The twin re-verifies the listener's client certificate against its own bundle."""
    _, fleet_cert, fleet_key = scep_server.fleets["fleet"]
    _, other_cert, other_key = scep_server.fleets["other"]

    def caps(profile: str, cert: tuple[Path, Path] | None) -> httpx.Response:
        context = ssl.create_default_context(cafile=str(scep_server.listener_ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        with httpx.Client(verify=context, timeout=30) as client:
            return client.get(f"{scep_server.server.url}/scep-mtls/{profile}?operation=GetCACaps")

    assert caps("fleet", (fleet_cert, fleet_key)).status_code == 200
    assert "Renewal" in caps("fleet", (fleet_cert, fleet_key)).text
    assert caps("fleet", None).status_code == 403
    refused = caps("fleet", (other_cert, other_key))  # trusted by the listener, not by "fleet"
    assert refused.status_code == 403, refused.text
    assert caps("other", (other_cert, other_key)).status_code == 200
    assert caps("devices", (fleet_cert, fleet_key)).status_code == 404  # no mTLS twin
