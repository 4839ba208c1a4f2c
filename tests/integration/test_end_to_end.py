"""The whole slice through the REST API, with a real nginx and a real webhook receiver.

bootstrap → admin key → Local CA issuer → nginx target → webhook notifier → certificate →
served by nginx → forced renewal → new serial served → audit and notifications show every step.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509

from certctl_notifier_webhook.notifier import verify_signature
from certctl_sdk.testing import TestCA

BOOTSTRAP = "bootstrap-token-for-e2e-0123456789"
HOOK_SECRET = "webhook-hmac-secret-e2e-0123456789"
NAME = "www.e2e.test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_serial(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def _wait_for_serial(port: int, serial: str, timeout: float = 15.0) -> None:
    """A graceful reload lets old workers finish, so poll fresh handshakes until they agree."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = _served_serial(port)
        if seen == serial:
            return
        time.sleep(0.1)
    raise AssertionError(f"nginx serves {seen}, expected {serial}")


@pytest.fixture
def nginx(tmp_path: Path):
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        if os.environ.get("CERTCTL_REQUIRE_PEERS"):
            pytest.fail("nginx is required (CERTCTL_REQUIRE_PEERS) but not installed")
        pytest.skip("nginx binary not found: install Debian's nginx to run the end-to-end test")
    d = tmp_path / "nginx"
    for sub in ("logs", "tmp", "ssl"):
        (d / sub).mkdir(parents=True)
    port = _free_port()
    ca = TestCA.create(common_name="bootstrap CA")
    first = ca.issue(NAME)
    (d / "ssl/cert.pem").write_text(first.certificate_pem)
    (d / "ssl/key.pem").write_text(first.key_pem)
    (d / "nginx.conf").write_text(
        f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/logs/access.log;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {NAME};
    ssl_certificate {d}/ssl/cert.pem;
    ssl_certificate_key {d}/ssl/key.pem;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""
    )
    subprocess.run(
        [binary, "-c", str(d / "nginx.conf"), "-p", str(d)], check=True, capture_output=True
    )
    _wait_for_serial(port, first.serial)
    yield {"binary": binary, "dir": d, "port": port, "first_serial": first.serial}
    pid = int((d / "nginx.pid").read_text())
    os.kill(pid, signal.SIGQUIT)


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify_signature(
                HOOK_SECRET,
                self.headers["X-Certctl-Timestamp"],
                body,
                self.headers["X-Certctl-Signature"],
            )
            received.append(
                {"ok": ok, "event": self.headers["X-Certctl-Event"], "body": json.loads(body)}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "received": received}
    server.shutdown()


async def test_issue_deploy_renew_with_real_nginx(app_factory, nginx, receiver):
    client = await app_factory(api_keys_named=(), bootstrap_token=BOOTSTRAP)

    # Day 0: no key works until the bootstrap token mints the first admin key.
    assert (await client.get("/api/v1/certificates")).status_code == 401
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": True}
    r = await client.post(
        "/api/v1/auth/bootstrap", json={"token": BOOTSTRAP, "name": "first-admin"}
    )
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (
        await client.post("/api/v1/auth/bootstrap", json={"token": BOOTSTRAP})
    ).status_code == 410

    r = await client.post(
        "/api/v1/issuers",
        json={"name": "internal", "type": "local", "config": {"common_name": "E2E Root"}},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    issuer = r.json()["id"]
    d = nginx["dir"]
    r = await client.post(
        "/api/v1/targets",
        json={
            "name": "edge",
            "type": "nginx",
            "config": {
                "cert_path": str(d / "ssl/cert.pem"),
                "key_path": str(d / "ssl/key.pem"),
                "nginx_binary": nginx["binary"],
                "config_file": str(d / "nginx.conf"),
                "prefix": str(d),
                "tls_host": "127.0.0.1",
                "tls_port": nginx["port"],
                "tls_server_name": NAME,
            },
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    target = r.json()["id"]
    assert (await client.post(f"/api/v1/targets/{target}/test", headers=headers)).json()[
        "ok"
    ] is True
    r = await client.post(
        "/api/v1/notifiers",
        json={
            "name": "ops",
            "type": "webhook",
            "config": {"url": receiver["url"], "secret": HOOK_SECRET},
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text

    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": NAME, "issuer_id": issuer, "target_ids": [target]},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()

    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()
    assert cert["status"] == "active", cert
    first_serial = cert["serial_number"]
    assert first_serial != nginx["first_serial"]
    _wait_for_serial(nginx["port"], first_serial)
    deployments = (
        await client.get(f"/api/v1/certificates/{cert_id}/deployments", headers=headers)
    ).json()
    assert [(x["status"], x["changed"], x["verified_serial"]) for x in deployments] == [
        ("succeeded", True, first_serial)
    ]

    # Forced renewal: a new key and serial, deployed and served.
    r = await client.post(f"/api/v1/certificates/{cert_id}/renew", headers=headers)
    assert r.status_code == 202
    await client.runtime.worker.drain()
    renewed = (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()
    assert renewed["serial_number"] != first_serial
    _wait_for_serial(nginx["port"], renewed["serial_number"])
    pem = (await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=headers)).json()
    served_key = x509.load_pem_x509_certificate((d / "ssl/cert.pem").read_bytes()).public_key()
    assert (
        served_key == x509.load_pem_x509_certificate(pem["certificate_pem"].encode()).public_key()
    )

    # Every step is in the audit trail.
    audit = (await client.get("/api/v1/audit", params={"per_page": 500}, headers=headers)).json()[
        "data"
    ]
    actions = [e["action"] for e in audit]
    for expected in (
        "bootstrap.consume",
        "issuer.create",
        "target.create",
        "target.test",
        "notifier.create",
        "certificate.create",
        "certificate.issued",
        "certificate.renew.request",
        "certificate.renewed",
    ):
        assert expected in actions, expected
    assert actions.count("certificate.deployed") == 2
    deployed = [e for e in audit if e["action"] == "certificate.deployed"]
    assert {e["details"]["serial"] for e in deployed} == {first_serial, renewed["serial_number"]}
    assert all(e["resource_id"] == cert_id for e in deployed)

    # The webhook received signed notifications for each lifecycle event.
    events = [m["event"] for m in receiver["received"]]
    assert all(m["ok"] for m in receiver["received"])
    assert events.count("certificate.deployed") == 2
    assert "certificate.issued" in events and "certificate.renewed" in events


async def test_broken_deploy_rolls_back_and_job_fails_with_reason(
    app_factory, admin_headers, nginx
):
    client = await app_factory()
    issuer = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    d = nginx["dir"]
    r = await client.post(
        "/api/v1/targets",
        json={
            "name": "broken",
            "type": "nginx",
            "config": {
                "cert_path": str(d / "ssl/cert.pem"),
                "key_path": str(d / "ssl/key.pem"),
                "nginx_binary": nginx["binary"],
                "config_file": str(d / "nginx.conf"),
                "prefix": str(d),
                "validate_command": ["/bin/sh", "-c", "echo config rejected >&2; exit 1"],
            },
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    target = r.json()["id"]
    before = {p: (d / "ssl" / p).read_bytes() for p in ("cert.pem", "key.pem")}
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": NAME, "issuer_id": issuer, "target_ids": [target]},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()

    jobs = (
        await client.get(
            "/api/v1/jobs",
            params={"certificate_id": cert_id, "type": "deployment"},
            headers=admin_headers,
        )
    ).json()["data"]
    assert len(jobs) == 1 and jobs[0]["status"] == "failed", jobs
    assert "config rejected" in jobs[0]["last_error"]
    assert jobs[0]["attempts"] == 1, "a rejected deployment is not retried"
    assert {p: (d / "ssl" / p).read_bytes() for p in ("cert.pem", "key.pem")} == before
    assert _served_serial(nginx["port"]) == nginx["first_serial"]
    deployments = (
        await client.get(f"/api/v1/certificates/{cert_id}/deployments", headers=admin_headers)
    ).json()
    assert deployments[0]["status"] == "failed"


async def test_background_worker_issues_without_being_driven(app_factory, admin_headers):
    client = await app_factory(background=True)
    issuer = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "bg.e2e.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    import asyncio

    for _ in range(200):
        cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
        if cert["status"] == "active":
            break
        await asyncio.sleep(0.05)
    assert cert["status"] == "active"
