"""SCEP through the app: caps, CA certificates, enrolment, PENDING and polling, renewal rules.

Hostile input is in test_hostile.py; real clients in tests/integration/test_scep.py.
"""

from __future__ import annotations

import base64
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import select

from certctl.db.models import Job, ScepTransaction


async def test_caps_and_ca_certificates(scep_app):
    app = await scep_app(background=False)
    r = await app.client.get("/scep/devices?operation=GetCACaps")
    assert r.status_code == 200
    caps = r.text.split()
    for cap in ("POSTPKIOperation", "SHA-256", "SHA-512", "SHA-1", "AES", "DES3",
                "SCEPStandard", "Renewal"):  # fmt: skip
        assert cap in caps
    # POST works too, and the pkiclient.exe suffix clients append.
    r = await app.client.post("/scep/devices/pkiclient.exe?operation=GetCACert")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-x509-ca-ra-cert"
    certificates = pkcs7.load_der_pkcs7_certificates(r.content)
    assert certificates[-1] == app.ra
    assert len(certificates) == 2 and certificates[0].subject != app.ra.subject
    assert "local root" in certificates[0].subject.rfc4514_string().lower()


async def test_unknown_profile_and_operation(scep_app):
    app = await scep_app(background=False)
    assert (await app.client.get("/scep/other?operation=GetCACaps")).status_code == 404
    assert (await app.client.get("/scep?operation=GetCACaps")).status_code == 404  # no legacy
    assert (await app.client.get("/scep-mtls/devices?operation=GetCACaps")).status_code == 404
    r = await app.client.get("/scep/devices?operation=GetNextCACert")
    assert r.status_code == 400
    assert "unknown operation" in r.text
    r = await app.client.get("/scep/devices")
    assert r.status_code == 400


async def test_enrol_with_the_static_challenge(scep_app, kit, admin_headers):
    app = await scep_app()
    device = kit.Device()
    reply = await app.enrol(device)
    assert reply.status == "0", reply
    assert reply.transaction_id == device.transaction_id
    assert reply.recipient_nonce == device.nonce
    # OpenSSL, too, reads the reply as valid CMS signed by the RA.
    subprocess.run(
        ["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-binary", "-out", "/dev/null"],
        input=(await app.post(device.pkcs_req(app.ra))).content, capture_output=True, check=True,
    )  # fmt: skip
    leaf = reply.certificates[0]
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "device-1"
    assert leaf.public_key().public_numbers() == device.key.public_key().public_numbers()
    r = await app.client.get(
        "/api/v1/audit", params={"action": "scep_pkcsreq"}, headers=admin_headers
    )
    assert [e["outcome"] for e in r.json()["data"]] == ["success"]
    r = await app.client.get("/api/v1/certificates", headers=admin_headers)
    (cert,) = r.json()["data"]
    assert cert["source"] == "scep"


async def test_get_form_and_3des_and_sha512(scep_app, kit, tmp_path):
    """An OpenSSL-made DES-EDE3-CBC envelope, SHA-512 digests, the GET form."""
    app = await scep_app()
    device = kit.Device()
    csr = kit.make_csr(device.key, "device-get")
    ra_pem = tmp_path / "ra-recipient.pem"
    ra_pem.write_bytes(app.ra.public_bytes(serialization.Encoding.PEM))
    envelope = subprocess.run(
        ["openssl", "cms", "-encrypt", "-binary", "-des3", "-outform", "DER", str(ra_pem)],
        input=csr, capture_output=True, check=True,
    ).stdout  # fmt: skip
    message = device.message(envelope, digest_oid="2.16.840.1.101.3.4.2.3")
    encoded = base64.urlsafe_b64encode(message).decode()  # micromdm's GET alphabet
    r = await app.client.get(
        "/scep/devices", params={"operation": "PKIOperation", "message": encoded}
    )
    assert r.status_code == 200, r.text
    reply = kit.read_cert_rep(r.content, device, app.ra)
    assert reply.status == "0"
    assert reply.certificates[0].subject.rfc4514_string() == "CN=device-get"


async def test_pending_then_resend_and_cert_poll_succeed(scep_app, kit, admin_headers):
    """A job that outlasts the wait is PENDING; the same request or a CertPoll gets it later."""
    app = await scep_app(background=False, wait=0)
    device = kit.Device()
    message = device.pkcs_req(app.ra)
    reply = await app.enrol(device, message)
    assert reply.status == "3" and reply.certificates == []
    poll = device.message(device.envelope(b"issuer-and-subject", app.ra), "20")
    assert (await app.enrol(device, poll)).status == "3"
    await app.client.runtime.worker.drain()
    again = await app.enrol(device, message)
    assert again.status == "0"
    polled = await app.enrol(device, poll)
    assert polled.status == "0"
    assert polled.certificates[0] == again.certificates[0]
    async with app.client.runtime.sessions() as session:
        assert len((await session.scalars(select(ScepTransaction))).all()) == 1
        assert len((await session.scalars(select(Job))).all()) == 1


async def test_cert_poll_of_an_unknown_transaction_or_key_is_bad_cert_id(scep_app, kit):
    app = await scep_app(background=False, wait=0)
    device = kit.Device()
    await app.enrol(device)
    stranger = kit.Device(transaction_id=device.transaction_id)
    poll = stranger.message(stranger.envelope(b"x", app.ra), "20")
    reply = await app.enrol(stranger, poll)
    assert (reply.status, reply.fail_info) == ("2", "4")


async def test_approval_gated_profile_answers_pending_until_approved(scep_app, kit, admin_headers):
    app = await scep_app(certificate_profile={"requires_approval": True})
    device = kit.Device()
    message = device.pkcs_req(app.ra)
    assert (await app.enrol(device, message)).status == "3"
    r = await app.client.get("/api/v1/approvals", headers=admin_headers)
    (approval,) = r.json()["data"]
    r = await app.client.post(
        f"/api/v1/approvals/{approval['id']}/approve", json={"note": "ok"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    await app.client.runtime.worker.drain()
    assert (await app.enrol(device, message)).status == "0"


async def test_renewal_needs_a_current_certificate_of_this_profile(scep_app, kit, admin_headers):
    app = await scep_app()
    first = kit.Device()
    issued = (await app.enrol(first)).certificates[0]
    # RenewalReq signed with the issued certificate, a new key, the same name: issued.
    renewing = kit.Device(key=first.key, signer=issued)
    new_key = kit.Device().key
    csr = kit.make_csr(new_key, "device-1", challenge=None)
    reply = await app.enrol(renewing, renewing.message(renewing.envelope(csr, app.ra), "17"))
    assert reply.status == "0", reply
    assert (
        reply.certificates[0].public_key().public_numbers() == new_key.public_key().public_numbers()
    )
    # Other names than the certificate's: refused.
    other = kit.Device(key=first.key, signer=issued)
    csr = kit.make_csr(new_key, "someone-else", challenge=None)
    reply = await app.enrol(other, other.message(other.envelope(csr, app.ra), "17"))
    assert (reply.status, reply.fail_info) == ("2", "2")
    # A self-signed certificate is no proof.
    stranger = kit.Device()
    csr = kit.make_csr(stranger.key, "device-1", challenge=None)
    reply = await app.enrol(stranger, stranger.message(stranger.envelope(csr, app.ra), "17"))
    assert (reply.status, reply.fail_info) == ("2", "4")
    # Revoked: refused.
    async with app.client.runtime.sessions() as session:
        rows = await session.scalars(select(ScepTransaction).order_by(ScepTransaction.created_at))
        cert_id = rows.first().certificate_id
    r = await app.client.post(
        f"/api/v1/certificates/{cert_id}/revoke", json={"reason": "keyCompromise"},
        headers=admin_headers,
    )  # fmt: skip
    assert r.status_code in (200, 202), r.text
    again = kit.Device(key=first.key, signer=issued)
    csr = kit.make_csr(new_key, "device-1", challenge=None)
    reply = await app.enrol(again, again.message(again.envelope(csr, app.ra), "17"))
    assert (reply.status, reply.fail_info) == ("2", "4")


async def test_legacy_profile_at_scep_and_cgi_bin(app_factory, admin_headers, ra_files, kit):
    """The un-named profile (CERTCTL_SCEP_PROFILE_ID) answers at /scep and the NDES path."""
    from certctl.domain.scep.settings import ScepProfileSettings, ScepSettings

    cert, key, ra, _ = ra_files
    legacy = ScepProfileSettings(name="", profile_id="legacy-scep", challenge_password=kit.CHALLENGE,
                                 ra_cert_path=str(cert), ra_key_path=str(key))  # fmt: skip
    client = await app_factory(
        background=True, rate_limit_enabled=False,
        scep=ScepSettings(enabled=True, profiles=(legacy,), issuance_wait_seconds=5),
    )  # fmt: skip
    r = await client.post("/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}},
                          headers=admin_headers)  # fmt: skip
    r = await client.post("/api/v1/profiles", headers=admin_headers,
                          json={"name": "legacy-scep", "issuer_id": r.json()["id"]})  # fmt: skip
    assert r.status_code == 201, r.text
    assert "Renewal" in (await client.get("/scep?operation=GetCACaps")).text
    device = kit.Device()
    r = await client.post(
        "/cgi-bin/pkiclient.exe?operation=PKIOperation", content=device.pkcs_req(ra)
    )
    assert r.status_code == 200
    assert kit.read_cert_rep(r.content, device, ra).status == "0"
    assert (await client.get("/scep/devices?operation=GetCACaps")).status_code == 404


async def test_the_same_request_twice_at_once_starts_one_job(scep_app, kit):
    import asyncio

    app = await scep_app(background=False, wait=0)
    device = kit.Device()
    message = device.pkcs_req(app.ra)
    replies = await asyncio.gather(*(app.post(message) for _ in range(4)))
    assert [r.status_code for r in replies] == [200] * 4
    for r in replies:
        assert kit.read_cert_rep(r.content, device, app.ra).status == "3"
    async with app.client.runtime.sessions() as session:
        assert len((await session.scalars(select(ScepTransaction))).all()) == 1
        assert len((await session.scalars(select(Job))).all()) == 1
