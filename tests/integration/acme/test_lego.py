"""lego (Debian's 4.9) against certctl's ACME server, unchanged, and against Pebble beside it.

* http-01: lego's own standalone server on a loopback port; certctl resolves the names through
  a real DNS server and fetches the key authorization from lego. The certificate verifies
  against the issuer's CA with ``openssl verify``, and lego renews it.
* dns-01 for a wildcard: lego's exec provider publishes the TXT record in the DNS server that
  certctl's validator then asks.
* ``trust_authenticated``: an EAB-enrolled account gets a certificate without a challenge; without
  the EAB key lego is refused.
* Conformance: one lego command line, only ``--server`` differing, against Pebble and certctl.

lego 4.9 cannot speak ARI (lego 4.11 added it), so ARI renewal is shown with certbot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from servers import require, run


def lego(directory: str, path: Path, *domains: str) -> list[str]:
    """The common part of a lego command line."""
    command = [require("lego"), "--server", directory, "--accept-tos", "--email", "ops@acme.test"]
    return [*command, *(f"--domains={d}" for d in domains), "--path", str(path)]


def issued(path: Path, name: str) -> x509.Certificate:
    file = path / "certificates" / f"{name.replace('*', '_')}.crt"
    return x509.load_pem_x509_certificate(file.read_bytes())


def dns_names(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(sans.get_values_for_type(x509.DNSName))


def test_http01_dns01_renew_and_verify(acme_server, dns, tmp_path):
    acme = acme_server()
    directory = acme.profile(
        acme_auth_mode="challenge", allowed_san_patterns=["*.acme.test", "*.wild.acme.test"]
    )
    env = {"LEGO_CA_CERTIFICATES": str(acme.listener.ca_pem)}
    http = ["--http", "--http.port", f"127.0.0.1:{acme.http01_port}"]
    path = tmp_path / "lego"

    run([*lego(directory, path, "web.acme.test", "www.acme.test"), *http, "run"], env=env)
    first = issued(path, "web.acme.test")
    assert dns_names(first) == {"web.acme.test", "www.acme.test"}
    ca = acme.ca_pem(tmp_path)
    leaf = path / "certificates" / "web.acme.test.crt"
    assert ": OK" in run(["openssl", "verify", "-CAfile", str(ca), str(leaf)])

    run(
        [*lego(directory, path, "web.acme.test", "www.acme.test"), *http,
         "renew", "--days", "100000", "--no-random-sleep"],
        env=env,
    )  # fmt: skip
    renewed = issued(path, "web.acme.test")
    assert renewed.serial_number != first.serial_number
    assert ": OK" in run(["openssl", "verify", "-CAfile", str(ca), str(leaf)])

    hook = tmp_path / "dns-hook.py"
    hook.write_text(
        "import json, sys, urllib.request\n"
        "action, fqdn, value = sys.argv[1:4]\n"
        f"url = {dns.management!r} + ('/set-txt' if action == 'present' else '/clear-txt')\n"
        "body = json.dumps({'host': fqdn, 'value': value}).encode()\n"
        "urllib.request.urlopen(urllib.request.Request(url, body, method='POST'))\n"
    )
    launcher = tmp_path / "dns-hook"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {hook} "$@"\n')
    launcher.chmod(0o755)
    run(
        [*lego(directory, path, "*.wild.acme.test"), "--dns", "exec",
         "--dns.resolvers", dns.address, "--dns.disable-cp", "run"],
        env={**env, "EXEC_PATH": str(launcher), "EXEC_POLLING_INTERVAL": "1",
             "EXEC_PROPAGATION_TIMEOUT": "30"},
    )  # fmt: skip
    assert dns_names(issued(path, "*.wild.acme.test")) == {"*.wild.acme.test"}

    orders = acme.audit("acme.order.create")
    assert len(orders) == 3
    assert {e["details"]["mode"] for e in orders} == {"challenge"}
    validated = acme.audit("acme.challenge.validated")
    assert {e["details"]["type"] for e in validated} == {"http-01", "dns-01"}
    client_held = [c for c in acme.certificates() if c.get("key_location") == "client"]
    assert len(client_held) == 3  # one managed certificate per order; certctl has no key


def test_trust_authenticated_needs_eab_and_matches_pebble(acme_server, pebble, tmp_path):
    acme = acme_server()
    directory = acme.profile(acme_auth_mode="trust_authenticated")
    env = {"LEGO_CA_CERTIFICATES": str(acme.listener.ca_pem)}
    http = ["--http", "--http.port", f"127.0.0.1:{acme.http01_port}"]

    refused = subprocess.run(
        [*lego(directory, tmp_path / "no-eab", "trusted.acme.test"), *http, "run"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "external account" in (refused.stdout + refused.stderr).lower()

    kid, hmac = acme.eab(directory)
    eab = ["--eab", "--kid", kid, "--hmac", hmac]
    run([*lego(directory, tmp_path / "eab", "trusted.acme.test"), *eab, *http, "run"], env=env)
    assert dns_names(issued(tmp_path / "eab", "trusted.acme.test")) == {"trusted.acme.test"}
    assert acme.audit("acme.challenge.validated") == []  # nothing was challenged

    # One command line, only the server differs: Pebble (always valid) and certctl (which
    # validates http-01 for real) both issue.
    challenged = acme.profile(acme_auth_mode="challenge")
    for server, path in ((pebble.directory, "pebble"), (challenged, "certctl")):
        command = lego(server, tmp_path / path, "same.acme.test", "alt.same.acme.test")
        run([*command, "--key-type", "ec384", *http, "run"], env=env)
        cert = issued(tmp_path / path, "same.acme.test")
        assert dns_names(cert) == {"same.acme.test", "alt.same.acme.test"}
