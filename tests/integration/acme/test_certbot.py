"""certbot against certctl's ACME server: issue (http-01 and trust_authenticated), renew,
revoke with a reason that OCSP then answers, and ARI-driven renewal after a scheduled
replacement.

Debian's certbot (2.1) does the everyday flows. ARI needs a newer certbot, which ``.ci/run``
installs from PyPI into ``.certctl/peers/certbot`` (the ``certbot_ari`` fixture builds it when
missing); with ARI, ``certbot renew`` asks ``renewal-info`` and renews only inside the window
certctl suggests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID
from servers import require, run


def certbot(binary: str, base: Path, *args: str) -> list[str]:
    dirs = [
        "--config-dir",
        f"{base}/etc",
        "--work-dir",
        f"{base}/work",
        "--logs-dir",
        f"{base}/log",
    ]
    return [binary, *args, "-n", *dirs]


def obtain(binary: str, base: Path, directory: str, port: int, name: str, *extra: str) -> list[str]:
    return certbot(
        binary, base, "certonly", "--agree-tos", "-m", "ops@acme.test", "--no-eff-email",
        "--server", directory, "--standalone", "--http-01-address", "127.0.0.1",
        "--http-01-port", str(port), "-d", name, *extra,
    )  # fmt: skip


def serial(base: Path, name: str) -> int:
    pem = (base / "etc" / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def ocsp_answer(acme, tmp_path: Path, ca: Path, cert: Path) -> str:
    """What openssl reads in certctl's signed OCSP answer: ``good`` or ``revoked`` and the
    reason, from the responder the certificate itself names (its AIA OCSP URL)."""
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    request, response = tmp_path / "ocsp-req.der", tmp_path / "ocsp-resp.der"
    run(["openssl", "ocsp", "-issuer", str(ca), "-cert", str(cert), "-no_nonce",
         "-reqout", str(request)])  # fmt: skip
    answer = acme.api.post(
        url,
        content=request.read_bytes(),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert answer.status_code == 200, answer.text
    response.write_bytes(answer.content)
    text = run(
        ["openssl", "ocsp", "-respin", str(response), "-issuer", str(ca), "-cert", str(cert),
         "-CAfile", str(ca), "-no_nonce"],
    )  # fmt: skip
    assert "Response verify OK" in text, text
    return text.split(f"{cert}:", 1)[1].strip()


def test_issue_renew_revoke_and_ocsp(acme_server, tmp_path):
    binary = require("certbot")
    acme = acme_server()
    directory = acme.profile(acme_auth_mode="challenge")
    env = {"REQUESTS_CA_BUNDLE": str(acme.listener.ca_pem)}
    base = tmp_path / "certbot"

    run(obtain(binary, base, directory, acme.http01_port, "cb.acme.test"), env=env)
    first = serial(base, "cb.acme.test")
    ca = acme.ca_pem(tmp_path)
    live = base / "etc" / "live" / "cb.acme.test"
    assert ": OK" in run(["openssl", "verify", "-CAfile", str(ca), str(live / "cert.pem")])

    run(certbot(binary, base, "renew", "--force-renewal", "--no-random-sleep-on-renew"), env=env)
    assert serial(base, "cb.acme.test") != first
    assert ocsp_answer(acme, tmp_path, ca, live / "cert.pem").split()[0] == "good"

    run(
        certbot(binary, base, "revoke", "--server", directory, "--cert-path",
                str(live / "cert.pem"), "--reason", "keycompromise", "--no-delete-after-revoke"),
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 10  # the responder re-reads within CERTCTL_OCSP_REFRESH_MS
    while not (status := ocsp_answer(acme, tmp_path, ca, live / "cert.pem")).startswith("revoked"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert "Reason: keyCompromise" in status, status  # certbot's --reason, carried through
    revoked = acme.audit("certificate.revoke") or acme.audit("acme.certificate.revoke")
    assert revoked, "the revocation is audited"


def test_trust_authenticated_with_eab(acme_server, tmp_path):
    binary = require("certbot")
    acme = acme_server()
    directory = acme.profile(acme_auth_mode="trust_authenticated")
    kid, hmac = acme.eab(directory)
    env = {"REQUESTS_CA_BUNDLE": str(acme.listener.ca_pem)}
    base = tmp_path / "certbot"
    eab = ("--eab-kid", kid, "--eab-hmac-key", hmac)
    run(obtain(binary, base, directory, acme.http01_port, "trusted.acme.test", *eab), env=env)
    assert serial(base, "trusted.acme.test") > 0
    assert [e["details"]["mode"] for e in acme.audit("acme.order.create")] == [
        "trust_authenticated"
    ]


def test_ari_renewal_after_a_scheduled_replacement(acme_server, certbot_ari, tmp_path):
    binary = certbot_ari
    # certbot honours renewal-info's Retry-After before it asks again; 6 h by default
    acme = acme_server(CERTCTL_ACME_SERVER_ARI_POLL_INTERVAL="1")
    directory = acme.profile(acme_auth_mode="challenge")
    env = {"REQUESTS_CA_BUNDLE": str(acme.listener.ca_pem)}
    base = tmp_path / "certbot"
    run(obtain(binary, base, directory, acme.http01_port, "ari.acme.test"), env=env)
    first = serial(base, "ari.acme.test")

    # Inside its validity and before the suggested window: certbot asks ARI and waits.
    output = run(certbot(binary, base, "renew", "--no-random-sleep-on-renew"), env=env)
    assert serial(base, "ari.acme.test") == first, output
    assert "not due for renewal" in output.lower(), output

    # The operator wants it replaced by a deadline two seconds away. Once it has passed, the
    # suggested window lies in the past and an ARI client renews at once (RFC 9773 §4.2); a
    # window still open is a random moment for the client to pick.
    (cert,) = acme.certificates()
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    r = acme.api.post(
        "/api/v1/certificates/replacements",
        json={
            "certificate_ids": [cert["id"]],
            "replace_by": deadline.isoformat(),
            "reason": "issuing key rotation",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["certificate_ids"] == [cert["id"]]
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)

    output = run(certbot(binary, base, "renew", "--no-random-sleep-on-renew"), env=env)
    assert serial(base, "ari.acme.test") != first, output
    assert len(acme.audit("acme.order.create")) == 2
    # certbot 5.8 asks renewal-info but does not send ``replaces``; the core tests cover it.
