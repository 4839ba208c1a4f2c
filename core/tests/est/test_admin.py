"""The admin routes: what EST serves (never a credential), and reloading client-CA trust."""

from __future__ import annotations

from certctl_sdk.testing import TestCA

ENV = {
    "CERTCTL_EST_PROFILES": "dev",
    "CERTCTL_EST_PROFILE_DEV_PROFILE_ID": "est-devices",
    "CERTCTL_EST_PROFILE_DEV_ALLOWED_AUTH_MODES": "mtls,basic",
    "CERTCTL_EST_PROFILE_DEV_ENROLLMENT_USERNAME": "device",
    "CERTCTL_EST_PROFILE_DEV_ENROLLMENT_PASSWORD": "enroll-secret-123",
    "CERTCTL_EST_PROFILE_DEV_MTLS_ENABLED": "true",
    "CERTCTL_EST_PROFILE_DEV_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": "{bundle}",
}


async def test_profiles_view_and_trust_reload(est, kit, viewer_headers):
    e = await est(ENV)
    r = await e.api.get("/api/v1/admin/est/profiles", headers=viewer_headers)
    assert r.status_code == 403
    r = await e.api.get("/api/v1/admin/est/profiles", headers=kit.ADMIN)
    assert r.status_code == 200, r.text
    (profile,) = r.json()["profiles"]
    assert profile["urls"][1].endswith("/.well-known/est-mtls/dev/")
    assert profile["basic_username"] == "device" and profile["basic_password_configured"]
    assert len(profile["trusted_cas"]) == 1
    assert "enroll-secret" not in r.text and "argon2" not in r.text

    # A second CA joins the bundle; a broken bundle keeps the trust there was.
    extra = TestCA.create(common_name="Second device CA").certificate_pem
    e.ca_pem.write_text(e.ca_pem.read_text() + extra)
    r = await e.api.post("/api/v1/admin/est/reload-trust", headers=kit.ADMIN)
    assert r.json()["trusted_cas"] == {"dev": 2} and r.json()["listener_cas"] is None
    e.ca_pem.write_text("garbage")
    r = await e.api.post("/api/v1/admin/est/reload-trust", headers=kit.ADMIN)
    assert r.json()["trusted_cas"] == {"dev": 2}
    assert "no readable PEM" in r.json()["errors"]["dev"]
    audit = await e.api.get("/api/v1/audit", params={"action": "est.trust.reload"},
                            headers=kit.ADMIN)  # fmt: skip
    assert len(audit.json()["data"]) == 3  # the fixture's own reload included
