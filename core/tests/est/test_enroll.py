"""simpleenroll, cacerts and csrattrs through the real app, job engine and Local CA."""

from __future__ import annotations

import base64
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization

BASIC = {
    "CERTCTL_EST_PROFILE_ID": "est-devices",
    "CERTCTL_EST_ALLOWED_AUTH_MODES": "basic",
    "CERTCTL_EST_ENROLLMENT_USERNAME": "device",
    "CERTCTL_EST_ENROLLMENT_PASSWORD": "enroll-secret-123",
}


async def test_cacerts_and_csrattrs_for_openssl(kit, est):
    e = await est(
        {"CERTCTL_EST_PROFILE_ID": "est-devices", "CERTCTL_EST_PROFILES": "open",
         "CERTCTL_EST_PROFILE_OPEN_PROFILE_ID": "open"},
        profiles={"est-devices": {}, "open": {"allowed_key_algorithms": []}},
    )  # fmt: skip
    r = await e.http.get("/.well-known/est/cacerts")
    assert r.status_code == 200, r.text
    (ca,) = kit.certs_of(r)
    assert ca.public_bytes(serialization.Encoding.PEM) == e.ca_pem.read_bytes()
    printed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print_certs"],
        input=base64.b64decode(r.content), capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert b"BEGIN CERTIFICATE" in printed
    # csrattrs: the default profile's key algorithms; a profile that asks nothing is 204.
    r = await e.http.get("/.well-known/est/csrattrs")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/csrattrs"
    parsed = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER"], input=base64.b64decode(r.content),
        capture_output=True, check=True, text=False,
    ).stdout.decode()  # fmt: skip
    assert "rsaEncryption" in parsed and "id-ecPublicKey" in parsed and "prime256v1" in parsed
    r = await e.http.get("/.well-known/est/open/csrattrs")
    assert r.status_code == 204


async def test_basic_enrollment_issues_once_per_csr(kit, est):
    e = await est(BASIC)
    csr, key = kit.make_csr("dev1.example.com")
    r = await e.enroll(csr)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="est"'
    r = await e.enroll(csr, headers=kit.basic(password="wrong-password"))
    assert r.status_code == 401
    assert await e.rows() == (0, 0)
    r = await e.enroll(csr, headers=kit.basic())
    assert r.status_code == 200, r.text
    (cert,) = kit.certs_of(r)
    assert cert.subject.rfc4514_string() == "CN=dev1.example.com"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # The same CSR again (a client that lost the answer): the same certificate, no new rows.
    again = await e.enroll(csr, headers=kit.basic())
    assert again.status_code == 200
    assert kit.certs_of(again)[0].serial_number == cert.serial_number
    assert await e.rows() == (1, 1)
    listed = (await e.api.get("/api/v1/certificates", headers=kit.ADMIN)).json()["data"]
    assert [(c["source"], c["key_location"]) for c in listed] == [("est", "client")]
    audit = await e.api.get(
        "/api/v1/audit", params={"action": "est.simpleenroll"}, headers=kit.ADMIN
    )
    (row,) = audit.json()["data"]
    assert row["details"]["principal"] == "basic:device"
    assert kit.PASSWORD not in audit.text


async def test_pem_and_binary_bodies_are_tolerated(kit, est):
    e = await est({"CERTCTL_EST_PROFILE_ID": "est-devices"})  # anonymous bootstrap
    csr, _ = kit.make_csr("pem.example.com")
    pem = x509.load_der_x509_csr(csr).public_bytes(serialization.Encoding.PEM)
    r = await e.http.post("/.well-known/est/simpleenroll", content=pem,
                          headers={"Content-Type": "application/x-pem-file"})  # fmt: skip
    assert r.status_code == 200, r.text
    csr2, _ = kit.make_csr("der.example.com")
    r = await e.http.post("/.well-known/est/simpleenroll", content=csr2,
                          headers={"Content-Type": "application/pkcs10"})  # fmt: skip
    assert r.status_code == 200, r.text
    # A binary body whose last byte looks like whitespace (the signature's, by chance): kept.
    for attempt in range(2000):
        csr3, _ = kit.make_csr(f"ws{attempt}.example.com")
        if csr3[-1:] in (b" ", b"\n", b"\r", b"\t", b"\x0b", b"\x0c"):
            break
    else:
        raise AssertionError("no CSR ending in a whitespace byte in 2000 tries")
    r = await e.http.post("/.well-known/est/simpleenroll", content=csr3,
                          headers={"Content-Type": "application/pkcs10"})  # fmt: skip
    assert r.status_code == 200, r.text


async def test_lockout_after_ten_failures_from_an_address(kit, est):
    e = await est(BASIC)
    csr, _ = kit.make_csr()
    for _ in range(10):
        r = await e.enroll(csr, headers=kit.basic(password="nope-nope-nope"))
        assert r.status_code == 401
    r = await e.enroll(csr, headers=kit.basic())  # the right password, too late
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 3000
    assert await e.rows() == (0, 0)


async def test_approval_profile_answers_202_with_retry_after(kit, est):
    e = await est(
        {"CERTCTL_EST_PROFILE_ID": "gated"}, profiles={"gated": {"requires_approval": True}}
    )
    csr, _ = kit.make_csr("gated.example.com")
    r = await e.enroll(csr)
    assert r.status_code == 202, r.text
    assert int(r.headers["retry-after"]) >= 60
    again = await e.enroll(csr)
    assert again.status_code == 202
    assert await e.rows() == (1, 1)  # the retry found the same job


async def test_policy_refusals_write_nothing(kit, est):
    e = await est(
        {"CERTCTL_EST_PROFILE_ID": "narrow"},
        profiles={"narrow": {"allowed_san_patterns": ["*.devices.example.com"]}},
    )
    csr, _ = kit.make_csr("laptop.example.org")
    r = await e.enroll(csr)
    assert r.status_code == 403
    assert "SAN patterns" in r.text
    ok, _ = kit.make_csr("a.devices.example.com")
    assert (await e.enroll(ok)).status_code == 200
    assert await e.rows() == (1, 1)


async def test_rate_limit_per_principal(kit, est):
    e = await est({**BASIC, "CERTCTL_EST_RATE_LIMIT_PER_PRINCIPAL_24H": "1"})
    first, _ = kit.make_csr("rl.example.com")
    assert (await e.enroll(first, headers=kit.basic())).status_code == 200
    assert (await e.enroll(first, headers=kit.basic())).status_code == 200  # a retry is not charged
    second, _ = kit.make_csr("rl.example.com")
    r = await e.enroll(second, headers=kit.basic())
    assert r.status_code == 429
    assert "24 hours" in r.text
    other, _ = kit.make_csr("other.example.com")  # another device under the same password
    assert (await e.enroll(other, headers=kit.basic())).status_code == 200


async def test_unknown_labels_and_disabled_est_are_404(kit, est, client):
    e = await est(BASIC)
    assert (await e.http.get("/.well-known/est/nope/cacerts")).status_code == 404
    assert (await e.http.get("/.well-known/est-mtls/nope/cacerts")).status_code == 404
    r = await client.get("/.well-known/est/cacerts")  # the default app: EST is off
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/plain")
