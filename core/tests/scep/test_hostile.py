"""Hostile PKIOperations: a signed FAILURE when the sender is known, else a 4xx; never a 500."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from certctl.db.models import Job, ManagedCertificate


async def _refused(app, message: bytes) -> str:
    r = await app.post(message)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    return r.text


async def _nothing_written(app) -> None:
    async with app.client.runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ManagedCertificate)) == 0
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_unreadable_messages_are_400_with_a_reason(scep_app, kit):
    app = await scep_app(background=False)
    device = kit.Device()
    good = device.pkcs_req(app.ra)
    assert "empty" in await _refused(app, b"")
    assert "ASN.1" in await _refused(app, b"\x30\x82\xff\xff garbage")
    assert "ASN.1" in await _refused(app, good[: len(good) // 2])
    assert "trailing" in await _refused(app, good + b"\x00")
    missing = device.message(device.envelope(b"x", app.ra), omit="2.16.840.1.113733.1.9.7")
    assert "transactionID" in await _refused(app, missing)
    r = await app.client.get(
        "/scep/devices", params={"operation": "PKIOperation", "message": "%%%"}
    )
    assert r.status_code == 400 and "base64" in r.text
    await _nothing_written(app)


async def test_oversized_message_is_413(scep_app):
    app = await scep_app(background=False, scep={"max_message_bytes": 8192})
    r = await app.post(b"\x30" * 9000)
    assert r.status_code == 413
    r = await app.post(b"\x30" * 2_000_000)  # beyond the server's body limit
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("case", "fail_info"),
    [
        ("bad-signature", "1"),
        ("wrong-recipient", "1"),
        ("truncated-envelope", "1"),
        ("garbage-envelope", "1"),
        ("unknown-type", "2"),
        ("no-challenge", "2"),
        ("wrong-challenge", "2"),
        ("not-a-csr", "2"),
    ],
)
async def test_identified_bad_requests_get_a_signed_failure(scep_app, kit, case, fail_info):
    app = await scep_app(background=False)
    device = kit.Device()
    csr = kit.make_csr(device.key, "device-1")
    if case == "bad-signature":
        message = device.message(device.envelope(csr, app.ra), tamper_signature=True)
    elif case == "wrong-recipient":
        other = kit.self_signed(kit.Device().key, "not the RA")
        message = device.message(device.envelope(csr, other))
    elif case == "truncated-envelope":
        envelope = device.envelope(csr, app.ra)
        message = device.message(envelope[:-40])
    elif case == "garbage-envelope":
        message = device.message(b"\x04\x03abc")
    elif case == "unknown-type":
        message = device.message(device.envelope(csr, app.ra), "99")
    elif case == "no-challenge":
        message = device.message(device.envelope(kit.make_csr(device.key, "d", None), app.ra))
    elif case == "wrong-challenge":
        message = device.pkcs_req(app.ra, challenge="guess")
    else:
        message = device.message(device.envelope(b"not a certificate request", app.ra))
    reply = await app.enrol(device, message)
    assert (reply.status, reply.fail_info) == ("2", fail_info)
    assert reply.transaction_id == device.transaction_id
    assert reply.recipient_nonce == device.nonce
    assert reply.certificates == []
    await _nothing_written(app)


async def test_single_des_is_refused_unless_allowed(scep_app, kit, tmp_path):
    device = kit.Device()
    csr = kit.make_csr(device.key, "device-des")
    app = await scep_app()
    recipient = tmp_path / "ra.pem"
    recipient.write_bytes(app.ra.public_bytes(serialization.Encoding.PEM))
    envelope = subprocess.run(
        ["openssl", "cms", "-encrypt", "-binary", "-des", "-outform", "DER",
         "-provider", "legacy", "-provider", "default", str(recipient)],
        input=csr, capture_output=True, check=True,
    ).stdout  # fmt: skip
    reply = await app.enrol(device, device.message(envelope))
    assert (reply.status, reply.fail_info) == ("2", "0")  # badAlg
    allowing = await scep_app(scep={"allow_single_des": True})
    reply = await allowing.enrol(device, device.message(envelope))
    assert reply.status == "0"


async def test_an_ecdsa_signer_is_refused_before_issuance(scep_app, kit):
    """The certificate would travel encrypted to the signer, which needs an RSA key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    app = await scep_app(background=False)
    device = kit.Device(key=ec.generate_private_key(ec.SECP256R1()))
    reply = await app.enrol(device)
    assert (reply.status, reply.fail_info) == ("2", "0")
    await _nothing_written(app)
