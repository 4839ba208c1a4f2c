"""Real ``certctl serve`` processes for the integration tests (imported as ``servers``).

Each server listens on its own loopback port with HTTPS: a certificate given by the caller
(so an ACME client can be told which CA to trust), or the self-signed one certctl makes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

__all__ = ["ADMIN_KEY", "ENCRYPTION_KEY", "Server", "free_port", "require", "run", "start_servers"]

ADMIN_KEY = "integration-admin-key-0123456789"
ENCRYPTION_KEY = "integration-encryption-key-0123456789-abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One server process; ``client`` speaks HTTPS to it as the admin."""

    index: int
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=f"https://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            verify=False,  # noqa: S501 - the server's own loopback certificate
            timeout=30,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server {self.index} exited: {self.tail()}")
            try:
                if self.client.get("/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server {self.index} not ready: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, leases and the leader lock are simply abandoned."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_servers(count: int, database_url: str, workdir: Path, **env: str) -> list[Server]:
    """Start ``count`` servers on one database and wait until each answers ``/ready``."""
    servers = []
    for index in range(count):
        data_dir = workdir / f"server-{index}"
        data_dir.mkdir(parents=True)
        port = int(env.pop("CERTCTL_SERVER_PORT", 0)) or free_port()
        log = data_dir / "server.log"
        environment = dict(
            os.environ,
            CERTCTL_DATABASE_URL=database_url,
            CERTCTL_DATA_DIR=str(data_dir),
            CERTCTL_SERVER_PORT=str(port),
            CERTCTL_CONFIG_ENCRYPTION_KEY=ENCRYPTION_KEY,
            CERTCTL_API_KEYS_NAMED=f"admin:{ADMIN_KEY}:admin",
            CERTCTL_LOG_LEVEL="warning",
            CERTCTL_SCHEDULER_HEARTBEAT="0.5",
            CERTCTL_SCHEDULER_LEADER_LEASE="3",
            **env,
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "certctl", "serve"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        servers.append(Server(index, port, data_dir, process, log))
    for server in servers:
        server.wait_ready()
    return servers


def require(binary: str) -> str:
    """The path of a peer binary; a failure under CERTCTL_REQUIRE_PEERS, else a skip."""
    found = shutil.which(binary) or (binary if Path(binary).is_file() else None)
    if found is None:
        reason = f"{binary} is not installed (apt-get install pebble lego certbot; see .ci/run)"
        if os.environ.get("CERTCTL_REQUIRE_PEERS"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run a client; its whole output in the assertion message when it fails."""
    result = subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command[:3])} failed:\n{output[-4000:]}"
    return output
