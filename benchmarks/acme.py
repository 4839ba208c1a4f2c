"""ACME benchmark: certctl's ACME server against Pebble, both driven by the same lego.

``uv run python benchmarks/acme.py [--orders N --parallel P]`` prints, for each server:

* orders completed per second, end to end: ``P`` lego processes at a time, each running one
  ``lego run`` for a fresh name (new order, finalize with lego's own CSR, download the chain),
  timed from the first start to the last exit;
* the server's CPU per order (user + system time of the server process and its children, from
  ``/proc/<pid>/stat``, before and after the timed run), the wall time per order, and the
  server's idle CPU per second measured just before, so background loops can be told apart;
* the ratio certctl / Pebble.

certctl runs as a real ``certctl serve`` process over HTTPS on SQLite, with a Local CA issuer
(P-256) and a ``trust_authenticated`` profile that requires EAB: an account bound by EAB gets
its orders without challenges. Pebble runs with ``PEBBLE_VA_ALWAYS_VALID=1`` and EAB required,
so it skips validation too, but lego still answers each http-01 challenge with a POST and polls
the authorization (two more requests per order than with certctl). The account is registered
once, untimed; every timed order reuses it, as a real fleet's client does. lego's own start-up
(~tens of ms per process) is in both figures alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from servers import free_port, start_servers  # tests/integration/servers.py

from certctl_sdk.models import SubjectAltNames
from certctl_sdk.testing import TestCA

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    """An ACME directory, the CA bundle for its listener, the EAB credentials, the server pid."""

    name: str
    directory: str
    ca_pem: Path
    kid: str
    hmac: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every live descendant (and their reaped children)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current not in stats:
            continue
        fields = stats[current]
        # utime, stime, cutime, cstime are fields 14-17 of stat; 12-15 after the ")".
        total += sum(int(value) for value in fields[11:15])
        todo.extend(children.get(current, []))
    return total / CLOCK_TICKS


def listener_certificate(work: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a ``localhost``/127.0.0.1 certificate both servers listen with."""
    ca = TestCA.create(common_name="ACME benchmark listener CA")
    leaf = ca.issue("localhost", sans=SubjectAltNames(dns=("localhost",), ip=("127.0.0.1",)))
    paths = work / "ca.pem", work / "cert.pem", work / "key.pem"
    for path, pem in zip(
        paths, (ca.certificate_pem, leaf.certificate_pem, leaf.key_pem), strict=True
    ):
        path.write_text(pem)
    return paths


@contextmanager
def certctl(work: Path, cert: Path, key: Path, ca_pem: Path) -> Iterator[Target]:
    (server,) = start_servers(
        1,
        f"sqlite+aiosqlite:///{work / 'certctl.db'}",
        work / "certctl",
        CERTCTL_SERVER_TLS_CERT_PATH=str(cert),
        CERTCTL_SERVER_TLS_KEY_PATH=str(key),
        CERTCTL_RATE_LIMIT_ENABLED="false",
        CERTCTL_ACME_SERVER_ORDERS_PER_HOUR_PER_ACCOUNT="1000000",
        CERTCTL_ACME_SERVER_ORDERS_PER_HOUR_PER_IP="1000000",
        CERTCTL_ACME_SERVER_PENDING_ORDERS_PER_ACCOUNT="100000",
    )
    try:
        api = server.client
        r = api.post("/api/v1/issuers", json={"name": "bench-ca", "type": "local", "config": {}})
        r.raise_for_status()
        r = api.post(
            "/api/v1/profiles",
            json={
                "name": "acme-bench",
                "issuer_id": r.json()["id"],
                "acme_auth_mode": "trust_authenticated",
                "acme_eab_required": True,
            },
        )
        r.raise_for_status()
        profile = r.json()["id"]
        r = api.post("/api/v1/acme/eab-keys", json={"profile_id": profile, "name": "bench"})
        r.raise_for_status()
        directory = f"{server.url}/acme/profile/{profile}/directory"
        yield Target("certctl", directory, ca_pem, r.json()["id"], r.json()["hmac_key"], server.pid)
    finally:
        server.stop()


@contextmanager
def pebble(work: Path, cert: Path, key: Path, ca_pem: Path) -> Iterator[Target]:
    binary = shutil.which("pebble")
    if binary is None:
        raise SystemExit("pebble is not installed (apt-get install pebble; see .ci/run)")
    port, management = free_port(), free_port()
    kid, hmac = "bench", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    config = work / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{management}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": free_port(),
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": True,
                    "externalAccountMACKeys": {kid: hmac},
                }
            }
        )
    )
    env = {
        **os.environ,
        "PEBBLE_VA_ALWAYS_VALID": "1",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",  # no deliberate badNonce retries in the figure
        "PEBBLE_AUTHZREUSE": "0",
    }
    log = (work / "pebble.log").open("wb")
    process = subprocess.Popen(
        [binary, "-config", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        directory = f"https://127.0.0.1:{port}/dir"
        trust = ssl.create_default_context(cafile=str(ca_pem))
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(directory, verify=trust, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pebble did not start: {(work / 'pebble.log').read_text()}")
            time.sleep(0.1)
        yield Target("Pebble", directory, ca_pem, kid, hmac, process.pid)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def lego_order(lego: str, target: Target, path: Path, domain: str, http_port: int) -> None:
    """One ``lego run``: a new order for ``domain`` on the account stored under ``path``."""
    command = [
        lego,
        "--server",
        target.directory,
        "--accept-tos",
        "--email",
        "bench@acme.test",
        "--eab",
        "--kid",
        target.kid,
        "--hmac",
        target.hmac,
        "--domains",
        domain,
        "--http",  # lego insists on a solver; only Pebble's challenges make it listen
        "--http.port",
        f"127.0.0.1:{http_port}",
        "--path",
        str(path),
        "run",
    ]
    env = {**os.environ, "LEGO_CA_CERTIFICATES": str(target.ca_pem)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"lego failed for {target.name}/{domain}:\n{result.stderr[-3000:]}")


@dataclass
class Figures:
    orders: int
    seconds: float
    cpu: float
    idle: float
    """Server CPU seconds per wall second with no client (certctl's scheduler loops tick)."""

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds


def measure(lego: str, target: Target, work: Path, orders: int, parallel: int) -> Figures:
    path = work / f"lego-{target.name}"
    lego_order(lego, target, path, "warm-up.bench.acme.test", free_port())  # registers (EAB)
    ports = [free_port() for _ in range(parallel)]
    idle_before, idle_start = cpu_seconds(target.pid), time.perf_counter()
    time.sleep(3)
    idle = (cpu_seconds(target.pid) - idle_before) / (time.perf_counter() - idle_start)

    def worker(slot: int) -> None:
        """Orders one after another on the worker's own port (Pebble's challenges bind it)."""
        for index in range(slot, orders, parallel):
            lego_order(lego, target, path, f"o{index}.bench.acme.test", ports[slot])

    cpu_before = cpu_seconds(target.pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(worker, range(parallel)))
    seconds = time.perf_counter() - start
    return Figures(orders, seconds, cpu_seconds(target.pid) - cpu_before, idle)


def report(name: str, figures: Figures) -> None:
    print(
        f"  {name:<8} {figures.per_second:7.2f} orders/s   "
        f"{1000 * figures.seconds / figures.orders:7.1f} ms wall/order   "
        f"{1000 * figures.cpu / figures.orders:7.2f} ms server CPU/order   "
        f"(idle: {1000 * figures.idle:.1f} ms CPU/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100, help="timed orders per server")
    parser.add_argument("--parallel", type=int, default=4, help="lego processes at a time")
    args = parser.parse_args()
    lego = shutil.which("lego")
    if lego is None:
        raise SystemExit("lego is not installed (apt-get install lego; see .ci/run)")

    with tempfile.TemporaryDirectory(prefix="certctl-bench-acme-") as tmp:
        work = Path(tmp)
        ca_pem, cert, key = listener_certificate(work)
        results: dict[str, Figures] = {}
        for name, start in (("certctl", certctl), ("Pebble", pebble)):
            (work / name).mkdir()
            with start(work / name, cert, key, ca_pem) as target:
                results[name] = measure(lego, target, work / name, args.orders, args.parallel)

    print(
        f"ACME orders end to end with lego 4.9 (EAB account, no challenge to solve), "
        f"{args.orders} orders, {args.parallel} at a time, {os.cpu_count()} cores:"
    )
    report("certctl", results["certctl"])
    report("Pebble", results["Pebble"])
    ours, theirs = results["certctl"], results["Pebble"]
    print(
        f"  certctl / Pebble: {ours.per_second / theirs.per_second:.2f}x the orders per second, "
        f"{(ours.cpu / ours.orders) / (theirs.cpu / theirs.orders):.1f}x the server CPU per order"
    )


if __name__ == "__main__":
    main()
