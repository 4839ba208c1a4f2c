"""The mTLS twin: per-profile trust, re-enrollment of certctl's own certificates, RFC 9266."""

from __future__ import annotations

import base64
import os

from cryptography import x509

from certctl_sdk.models import SubjectAltNames
from certctl_sdk.testing import TestCA


def _env(foreign_bundle: str, **extra: str) -> dict[str, str]:
    return {
        "CERTCTL_EST_PROFILES": "dev,other",
        "CERTCTL_EST_PROFILE_DEV_PROFILE_ID": "est-devices",
        "CERTCTL_EST_PROFILE_DEV_ALLOWED_AUTH_MODES": "mtls,basic",
        "CERTCTL_EST_PROFILE_DEV_ENROLLMENT_PASSWORD": "enroll-secret-123",
        "CERTCTL_EST_PROFILE_DEV_MTLS_ENABLED": "true",
        "CERTCTL_EST_PROFILE_DEV_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": "{bundle}",
        "CERTCTL_EST_PROFILE_OTHER_PROFILE_ID": "est-devices",
        "CERTCTL_EST_PROFILE_OTHER_ALLOWED_AUTH_MODES": "mtls",
        "CERTCTL_EST_PROFILE_OTHER_MTLS_ENABLED": "true",
        "CERTCTL_EST_PROFILE_OTHER_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": foreign_bundle,
        **extra,
    }


async def _statuses(e) -> dict[str, str]:
    from sqlalchemy import select

    from certctl.db.models import ManagedCertificate

    async with e.runtime.sessions() as session:
        rows = await session.execute(
            select(ManagedCertificate.serial_number, ManagedCertificate.status)
        )
        return {row[0]: row[1] for row in rows.all()}


def _foreign(tmp_path):
    ca = TestCA.create(common_name="Foreign device CA")
    path = tmp_path / "foreign.pem"
    path.write_text(ca.certificate_pem)
    leaf = ca.issue("dev1.example.com", sans=SubjectAltNames(dns=("dev1.example.com",)))
    return str(path), x509.load_pem_x509_certificate(leaf.certificate_pem.encode())


async def test_reenroll_renews_certctls_certificate_and_supersedes_it(est, kit, tmp_path):
    bundle, foreign_leaf = _foreign(tmp_path)
    e = await est(_env(bundle))
    csr, _ = kit.make_csr("dev1.example.com", sans=["dev1.example.com"])
    r = await e.enroll(csr, path="/.well-known/est/dev/simpleenroll", headers=kit.basic())
    assert r.status_code == 200, r.text
    (first,) = kit.certs_of(r)

    e.present(None)
    renew, _ = kit.make_csr("dev1.example.com", sans=["dev1.example.com"])
    mtls = "/.well-known/est-mtls/dev/simplereenroll"
    r = await e.enroll(renew, path=mtls)
    assert r.status_code == 403 and "client certificate" in r.text

    e.present(first)
    r = await e.enroll(renew, path=mtls)
    assert r.status_code == 200, r.text
    (second,) = kit.certs_of(r)
    assert second.serial_number != first.serial_number
    assert second.subject == first.subject
    assert await _statuses(e) == {
        format(first.serial_number, "x"): "archived",
        format(second.serial_number, "x"): "active",
    }
    audit = await e.api.get("/api/v1/audit", headers=kit.ADMIN,
                            params={"action": "est.simplereenroll.supersede"})  # fmt: skip
    assert len(audit.json()["data"]) == 1

    # The same CSR again with the old certificate: the same answer (a lost response).
    r = await e.enroll(renew, path=mtls)
    assert r.status_code == 200
    assert kit.certs_of(r)[0].serial_number == second.serial_number
    # A new CSR with the renewed-away certificate: refused.
    other, _ = kit.make_csr("dev1.example.com", sans=["dev1.example.com"])
    r = await e.enroll(other, path=mtls)
    assert r.status_code == 403 and "already renewed" in r.text

    e.present(second)
    renamed, _ = kit.make_csr("dev2.example.com", sans=["dev2.example.com"])
    r = await e.enroll(renamed, path=mtls)
    assert r.status_code == 400 and "names" in r.text

    # A foreign CA's certificate is not this profile's; certctl's is not the other profile's.
    e.present(foreign_leaf)
    r = await e.enroll(other, path=mtls)
    assert r.status_code == 403 and "not trusted" in r.text
    e.present(second)
    r = await e.http.get("/.well-known/est-mtls/other/cacerts")
    assert r.status_code == 403 and "not trusted" in r.text
    r = await e.http.get("/.well-known/est-mtls/dev/cacerts")
    assert r.status_code == 200

    # Revoked: no more renewals with it.
    listed = (await e.api.get("/api/v1/certificates", headers=kit.ADMIN)).json()["data"]
    managed = [c for c in listed if c["serial_number"] == format(second.serial_number, "x")]
    r = await e.api.post(f"/api/v1/certificates/{managed[0]['id']}/revoke",
                         json={"reason": "keyCompromise"}, headers=kit.ADMIN)  # fmt: skip
    assert r.status_code == 200, r.text
    again, _ = kit.make_csr("dev1.example.com", sans=["dev1.example.com"])
    r = await e.enroll(again, path=mtls)
    assert r.status_code == 403 and "revoked" in r.text


async def test_mtls_only_profile_refuses_the_plain_route(est, kit, tmp_path):
    bundle, foreign_leaf = _foreign(tmp_path)
    e = await est(_env(bundle))
    csr, _ = kit.make_csr("dev1.example.com", sans=["dev1.example.com"])
    r = await e.enroll(csr, path="/.well-known/est/other/simpleenroll")
    assert r.status_code == 403 and "est-mtls/other" in r.text
    e.present(foreign_leaf)
    r = await e.enroll(csr, path="/.well-known/est-mtls/other/simpleenroll")
    assert r.status_code == 200, r.text
    assert await e.rows() == (1, 1)


async def test_channel_binding(est, kit, tmp_path):
    bundle, foreign_leaf = _foreign(tmp_path)
    e = await est(_env(bundle, CERTCTL_EST_PROFILE_OTHER_CHANNEL_BINDING_REQUIRED="true"))
    path = "/.well-known/est-mtls/other/simpleenroll"
    binding = os.urandom(32)
    good, _ = kit.make_csr("dev1.example.com", challenge=base64.b64encode(binding))
    e.present(foreign_leaf, version="TLSv1.2")
    r = await e.enroll(good, path=path)
    assert r.status_code == 426 and "TLS 1.3" in r.text
    e.present(foreign_leaf, binding=binding)
    missing, _ = kit.make_csr("dev1.example.com")
    r = await e.enroll(missing, path=path)
    assert r.status_code == 400 and "challengePassword" in r.text
    wrong, _ = kit.make_csr("dev1.example.com", challenge=base64.b64encode(os.urandom(32)))
    r = await e.enroll(wrong, path=path)
    assert r.status_code == 409
    assert await e.rows() == (0, 0)
    r = await e.enroll(good, path=path)
    assert r.status_code == 200, r.text
    # csrattrs tells clients to send the binding.
    r = await e.http.get("/.well-known/est-mtls/other/csrattrs")
    assert r.status_code == 200
    assert bytes.fromhex("06092a864886f70d010907") in base64.b64decode(r.content)
