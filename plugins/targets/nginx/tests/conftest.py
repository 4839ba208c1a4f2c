"""A real nginx on 127.0.0.1, in a private prefix, serving certificates from a test CA.

One nginx process serves the whole session (a graceful stop alone takes over a second); a
function-scoped fixture puts the first certificate back and reloads before every test, so tests
stay independent of each other's deployments.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from certctl_sdk import DeployRequest
from certctl_sdk.pem import serial_hex
from certctl_sdk.testing import IssuedLeaf, TestCA, make_context, make_deploy_request
from certctl_target_nginx import NginxTarget, NginxTargetConfig

SERVER_NAME = "www.example.test"

NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log notice;
events {{ worker_connections 64; }}
http {{
  access_log {d}/logs/access.log;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {server_name};
    ssl_certificate {d}/ssl/cert.pem;
    ssl_certificate_key {d}/ssl/key.pem;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def find_nginx() -> str | None:
    """nginx lives in /usr/sbin on Debian, which is not on every PATH."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def served_certificate(port: int, server_name: str = SERVER_NAME) -> x509.Certificate:
    """The leaf nginx presents on a fresh TLS handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def served_serial(port: int) -> str:
    return serial_hex(served_certificate(port))


@dataclass
class Nginx:
    """A running nginx and the files it serves."""

    binary: str
    prefix: Path
    port: int
    first: IssuedLeaf

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def cert_path(self) -> Path:
        return self.prefix / "ssl" / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self.prefix / "ssl" / "key.pem"

    @property
    def pid(self) -> int:
        return int((self.prefix / "nginx.pid").read_text())

    def served_serial(self) -> str:
        """Serial of the leaf a fresh handshake sees."""
        return served_serial(self.port)

    def files(self) -> dict[str, bytes]:
        """The live certificate and key, to compare before and after a deployment."""
        return {p.name: p.read_bytes() for p in (self.cert_path, self.key_path)}

    def workers(self) -> dict[int, str]:
        """The master's children (pid → process title, which says when one is shutting down)."""
        pid = self.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        titles: dict[int, str] = {}
        for child in children:
            try:
                raw = Path(f"/proc/{child}/cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited between the two reads (ESRCH while it is being reaped)
            titles[int(child)] = raw.replace(b"\0", b" ").decode().strip()
        return titles

    def settle(self, replaced: Iterable[int] = (), timeout: float = 10.0) -> None:
        """Wait until only fresh workers accept connections.

        During a reload old and new workers accept on the same socket, so one handshake may see
        either certificate; after a reload pass the workers from before it as ``replaced``.
        """
        gone = set(replaced)
        deadline = time.monotonic() + timeout
        while True:
            workers = self.workers()
            if (
                workers
                and not gone & workers.keys()
                and not any("shutting down" in title for title in workers.values())
            ):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx workers did not settle: {workers}")
            time.sleep(0.02)

    def reloads(self) -> int:
        """How many times the master has re-read its configuration (a reload)."""
        log = (self.prefix / "logs" / "error.log").read_text()
        return log.count("(SIGHUP) received")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def serve_first(self) -> None:
        """Put the first certificate back and reload, so every worker serves it.

        Reloading unconditionally (a few milliseconds) also retires workers a previous test's
        reload may have left behind with another certificate.
        """
        before = self.workers()
        self.cert_path.write_text(self.first.certificate_pem + "".join(self.first.chain_pem))
        self.key_path.write_text(self.first.key_pem)
        for leftover in self.cert_path.parent.iterdir():
            if leftover not in (self.cert_path, self.key_path):
                leftover.unlink()
        result = self.run("-s", "reload")
        assert result.returncode == 0, result.stderr
        self.settle(replaced=before)
        assert served_serial(self.port) == self.first.serial


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop(pid: int, timeout: float = 10.0) -> None:
    """Graceful stop (QUIT), then wait for the master to go away."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return TestCA.create()


@pytest.fixture(scope="session")
def nginx_server(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx binary not found")
    prefix = tmp_path_factory.mktemp("nginx")
    for sub in ("logs", "tmp", "ssl"):
        (prefix / sub).mkdir()
    port = _free_port()
    (prefix / "nginx.conf").write_text(
        NGINX_CONF.format(d=prefix, port=port, server_name=SERVER_NAME)
    )
    server = Nginx(binary=binary, prefix=prefix, port=port, first=ca.issue(SERVER_NAME))
    server.cert_path.write_text(server.first.certificate_pem + "".join(server.first.chain_pem))
    server.key_path.write_text(server.first.key_pem)
    # -e: the compiled-in error log (/var/log/nginx) is opened before the config is read.
    started = server.run("-e", str(prefix / "logs" / "error.log"))
    assert started.returncode == 0, started.stderr
    try:
        _wait_until_listening(port)
        yield server
    finally:
        _stop(server.pid)


@pytest.fixture
def nginx(nginx_server: Nginx) -> Nginx:
    """The module's nginx, serving the first certificate again."""
    nginx_server.serve_first()
    return nginx_server


@pytest.fixture
def make_target(nginx: Nginx):
    """Build a target for the test nginx; ``overrides`` replace configuration fields."""

    def build(**overrides: object) -> NginxTarget:
        settings: dict[str, object] = {
            "cert_path": str(nginx.cert_path),
            "key_path": str(nginx.key_path),
            "nginx_binary": nginx.binary,
            "config_file": str(nginx.conf),
            "prefix": str(nginx.prefix),
            "tls_host": "127.0.0.1",
            "tls_port": nginx.port,
            "tls_timeout": 3.0,
            "tls_attempts": 3,
            "tls_retry_delay": 0.2,
            "command_timeout": 15.0,
        }
        settings.update(overrides)
        return NginxTarget(NginxTargetConfig(**settings), make_context())

    return build


@pytest.fixture
def second(ca: TestCA) -> IssuedLeaf:
    return ca.issue(SERVER_NAME)


@pytest.fixture
def second_request(second: IssuedLeaf) -> DeployRequest:
    return make_deploy_request(second)
