"""A real certctl server over HTTPS for real ACME clients (lego, certbot), and Pebble next to it.

The server's listener certificate comes from a throwaway CA the clients are told to trust
(``LEGO_CA_CERTIFICATES``, ``REQUESTS_CA_BUNDLE``). Names resolve through
pebble-challtestsrv, a real DNS server answering 127.0.0.1 for every name and serving the TXT
records a dns-01 client sets through its management API, so the server's validators do real
lookups and real connections to the clients' own challenge servers on loopback.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import Server, free_port, require, run, start_servers

from certctl_sdk.models import SubjectAltNames
from certctl_sdk.testing import TestCA

CERTBOT_VERSION = "5.8.0"  # the version .ci/run installs; ARI came with certbot 4.1
CERTBOT_VENV = Path(__file__).resolve().parents[3] / ".certctl" / "peers" / "certbot"


@pytest.fixture(scope="session")
def certbot_ari() -> str:
    """certbot from PyPI, which asks ARI (Debian's 2.1 cannot): .ci/run's venv, else built here."""
    binary = CERTBOT_VENV / "bin" / "certbot"
    if not binary.exists():
        CERTBOT_VENV.parent.mkdir(parents=True, exist_ok=True)
        with (CERTBOT_VENV.parent / "certbot.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker builds it, the others wait
            if not binary.exists():
                try:
                    for command in (
                        [sys.executable, "-m", "venv", str(CERTBOT_VENV)],
                        [f"{CERTBOT_VENV}/bin/pip", "install", "-q", f"certbot=={CERTBOT_VERSION}"],
                    ):
                        subprocess.run(command, capture_output=True, timeout=300, check=True)
                except (OSError, subprocess.SubprocessError):
                    shutil.rmtree(CERTBOT_VENV, ignore_errors=True)  # require() then says so
    return require(str(binary))


@dataclass
class Listener:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


@pytest.fixture
def listener(tmp_path: Path) -> Listener:
    ca = TestCA.create(common_name="ACME test listener CA")
    leaf = ca.issue("localhost", sans=SubjectAltNames(dns=("localhost",), ip=("127.0.0.1",)))
    d = tmp_path / "listener"
    d.mkdir()
    paths = Listener(d / "ca.pem", d / "cert.pem", d / "key.pem")
    paths.ca_pem.write_text(ca.certificate_pem)
    paths.cert_pem.write_text(leaf.certificate_pem)
    paths.key_pem.write_text(leaf.key_pem)
    return paths


@dataclass
class Dns:
    """pebble-challtestsrv: ``address`` for resolvers, ``set_txt``/``clear_txt`` for dns-01."""

    address: str
    management: str

    def set_txt(self, host: str, value: str) -> None:
        httpx.post(
            f"{self.management}/set-txt", json={"host": host, "value": value}
        ).raise_for_status()

    def clear_txt(self, host: str) -> None:
        httpx.post(f"{self.management}/clear-txt", json={"host": host}).raise_for_status()


@pytest.fixture
def dns(tmp_path: Path) -> Iterator[Dns]:
    binary = require("pebble-challtestsrv")
    port, management = free_port(), free_port()
    log = (tmp_path / "challtestsrv.log").open("wb")
    process = subprocess.Popen(
        [binary, "-dns01", f"127.0.0.1:{port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", f"127.0.0.1:{management}", "-defaultIPv4", "127.0.0.1",
         "-defaultIPv6", ""],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{management}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.post(f"{url}/clear-txt", json={"host": "ready.test."}, timeout=1)
            break
        except httpx.HTTPError:
            assert process.poll() is None, (tmp_path / "challtestsrv.log").read_text()
            assert time.monotonic() < deadline, "pebble-challtestsrv did not start"
            time.sleep(0.1)
    yield Dns(f"127.0.0.1:{port}", url)
    process.terminate()
    process.wait(10)
    log.close()


@dataclass
class AcmeServer:
    """A running certctl with a Local CA issuer; ``profile()`` makes ACME directories."""

    server: Server
    listener: Listener
    issuer_id: str
    http01_port: int

    @property
    def api(self) -> httpx.Client:
        return self.server.client

    def profile(self, **fields: Any) -> str:
        """A profile on the Local CA; returns its directory URL."""
        body = {"name": f"acme-{time.monotonic_ns()}", "issuer_id": self.issuer_id, **fields}
        r = self.api.post("/api/v1/profiles", json=body)
        assert r.status_code == 201, r.text
        return f"{self.server.url}/acme/profile/{r.json()['id']}/directory"

    def eab(self, directory: str) -> tuple[str, str]:
        profile_id = directory.split("/acme/profile/")[1].split("/")[0]
        r = self.api.post("/api/v1/acme/eab-keys", json={"profile_id": profile_id})
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["hmac_key"]

    def ca_pem(self, tmp_path: Path) -> Path:
        """The issuing CA certificate, as PEM, for ``openssl verify``."""
        r = self.api.get(f"/.well-known/pki/ca/{self.issuer_id}")  # the AIA caIssuers URL
        assert r.status_code == 200, r.text
        der, path = tmp_path / "issuing-ca.der", tmp_path / "issuing-ca.pem"
        der.write_bytes(r.content)
        run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-out", str(path)])
        return path

    def certificates(self) -> list[dict[str, Any]]:
        r = self.api.get("/api/v1/certificates", params={"per_page": 200})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["data"]
        return items

    def audit(self, action: str) -> list[dict[str, Any]]:
        r = self.api.get("/api/v1/audit", params={"action": action, "per_page": 200})
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["data"]
        return events


@pytest.fixture
def acme_server(
    database_url: str, tmp_path: Path, listener: Listener, dns: Dns
) -> Iterator[Callable[..., AcmeServer]]:
    """``acme_server(**env)`` starts certctl; validators ask ``dns`` and may reach loopback."""
    started: list[Server] = []

    def start(**env: str) -> AcmeServer:
        http01_port = free_port()
        (server,) = start_servers(
            1,
            database_url,
            tmp_path / f"certctl-{len(started)}",
            CERTCTL_SERVER_TLS_CERT_PATH=str(listener.cert_pem),
            CERTCTL_SERVER_TLS_KEY_PATH=str(listener.key_pem),
            CERTCTL_ACME_SERVER_DNS01_RESOLVER=dns.address,
            CERTCTL_ACME_SERVER_HTTP01_PORT=str(http01_port),
            CERTCTL_ACME_SERVER_VALIDATION_ALLOW_LOOPBACK="true",
            CERTCTL_RATE_LIMIT_ENABLED="false",
            **env,
        )
        started.append(server)
        r = server.client.post(
            "/api/v1/issuers", json={"name": "acme-ca", "type": "local", "config": {}}
        )
        assert r.status_code == 201, r.text
        return AcmeServer(server, listener, r.json()["id"], http01_port)

    yield start
    for server in started:
        server.stop()


@dataclass
class Pebble:
    directory: str
    ca_pem: Path


@pytest.fixture
def pebble(tmp_path: Path, listener: Listener) -> Iterator[Pebble]:
    """Pebble (always-valid, EAB off) on the same listener certificate as certctl."""
    binary = require("pebble")
    port, management = free_port(), free_port()
    config = tmp_path / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{management}",
                    "certificate": str(listener.cert_pem),
                    "privateKey": str(listener.key_pem),
                    "httpPort": 5002,
                    "tlsPort": 5001,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    log = (tmp_path / "pebble.log").open("wb")
    process = subprocess.Popen(
        [binary, "-config", str(config)],
        env={
            **os.environ,
            "PEBBLE_VA_ALWAYS_VALID": "1",
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    directory = f"https://127.0.0.1:{port}/dir"
    trust = ssl.create_default_context(cafile=str(listener.ca_pem))
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(directory, verify=trust, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, (tmp_path / "pebble.log").read_text()
        assert time.monotonic() < deadline, "pebble did not start"
        time.sleep(0.1)
    yield Pebble(directory, listener.ca_pem)
    process.terminate()
    process.wait(10)
    log.close()
