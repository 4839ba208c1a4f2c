"""PKI benchmarks: cached OCSP responses per second, and a CRL of 100,000 entries.

OCSP is measured three ways, all with cached good answers to one nonce-less POST request:

* in-process through ASGI (the app called directly, no network, no client library): the
  server's own cost per response;
* over real HTTP with ``wrk`` against ``certctl serve`` (uvicorn, HTTPS, as deployed), with one
  connection and with several;
* the same over plain HTTP (uvicorn serving the same app, as behind a TLS-terminating proxy).

``wrk`` comes from the ``wrk`` Debian package; without it the HTTP figures are skipped.

The CRL benchmark bulk-inserts revocation rows for one issuer, then times the regeneration end
to end (read + sign by the Local CA + store) and a GET of the CRL.

Both are repeated for a leaf under a three-level CA hierarchy (root → intermediate → issuing CA,
chosen as the issuer's issuing CA), to show that the depth of the tree costs nothing per answer:
the responder and the CRL are signed by the issuing CA alone.

``token`` (with ``softhsm2`` installed) compares CA keys in the file store with keys in a
SoftHSM2 PKCS#11 token: leaves signed by the Local CA (the issuer's ``issue`` called directly,
so the figure is the signing path: CSR check, build, sign in the token, re-assemble, verify),
and OCSP answers to nonce requests (signed every time; by the delegated responder for a file
CA, by the issuing CA in the token for a token CA) and cached answers.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

__all__ = ["crl_generation", "ocsp_http", "ocsp_in_process", "run", "token_signing"]

ADMIN = "bench-admin-key-0123456789"
ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"
_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
TREE_DEPTH = 2
"""Tree CAs below the root in the hierarchy runs: root → intermediate → issuing CA."""


def _settings(database_url: str, data_dir: Path) -> Any:
    from certctl.settings import Settings, parse_named_api_keys

    return Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        config_encryption_key=ENC_KEY,
        api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"),
        database_pool_size=20,
        ocsp_rate_limit_per_ip_min=0,  # every request comes from one address
        rate_limit_enabled=False,  # ...and one key (benchmarks/ratelimit.py measures the limit)
    )


async def _tree(client: httpx.AsyncClient, issuer: str, depth: int) -> None:
    """Chain ``depth`` CAs below the issuer's root and make the last one its issuing CA."""
    parent = None
    for level in range(1, depth + 1):
        r = await client.post(
            f"/api/v1/issuers/{issuer}/intermediates",
            json={
                "name": f"level {level}",
                "parent_ca_id": parent,
                "subject": {"common_name": f"bench CA level {level}"},
            },
            headers=_HEADERS,
        )
        r.raise_for_status()
        parent = r.json()["id"]
    if parent is not None:
        r = await client.put(
            f"/api/v1/issuers/{issuer}/issuing-ca", json={"ca_id": parent}, headers=_HEADERS
        )
        r.raise_for_status()


async def _issue_one(
    client: httpx.AsyncClient, drain: Any, tree_depth: int = 0
) -> tuple[str, str, bytes]:
    """(issuer id, certificate id, a nonce-less OCSP request for it) over ``client``.

    ``tree_depth`` CAs are chained below the issuer's root first, the last signing the leaf.
    """
    r = await client.post(
        "/api/v1/issuers",
        json={"name": "bench", "type": "local", "config": {}},
        headers=_HEADERS,
    )
    r.raise_for_status()
    issuer = r.json()["id"]
    await _tree(client, issuer, tree_depth)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "ocsp.bench.example", "issuer_id": issuer},
        headers=_HEADERS,
    )
    r.raise_for_status()
    cert_id = r.json()["certificate"]["id"]
    for _ in range(200):
        await drain()
        r = await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=_HEADERS)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    r.raise_for_status()
    leaf = x509.load_pem_x509_certificate(r.json()["certificate_pem"].encode())
    chain = x509.load_pem_x509_certificates(r.json()["chain_pem"].encode())
    if len(chain) != tree_depth + 1:
        raise RuntimeError(f"expected {tree_depth + 1} CA certificates, got {len(chain)}")
    ca = chain[0]
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, ca, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    return issuer, cert_id, der


def _check_good(body: bytes) -> None:
    if ocsp.load_der_ocsp_response(body).certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise RuntimeError("expected a good OCSP response")


def _percentile(samples: list[float], q: float) -> float:
    return samples[max(0, int(len(samples) * q) - 1)]


async def ocsp_in_process(
    database_url: str, data_dir: Path, requests: int, concurrency: int, tree_depth: int = 0
) -> dict[str, float]:
    """Cached OCSP answers per second with the app called through ASGI directly."""
    from certctl.app import create_app

    app = create_app(_settings(database_url, data_dir), background=False)
    runtime = app.state.runtime
    await runtime.start(background=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench.local"
    )
    try:
        issuer, _, der = await _issue_one(client, runtime.worker.drain, tree_depth)
        path = f"/.well-known/pki/ocsp/{issuer}"
        headers = [
            (b"host", b"bench.local"),
            (b"content-type", b"application/ocsp-request"),
            (b"content-length", str(len(der)).encode()),
        ]

        async def one() -> float:
            sent: list[dict[str, Any]] = []
            done = False

            async def receive() -> dict[str, Any]:
                nonlocal done
                if done:
                    await asyncio.Event().wait()
                done = True
                return {"type": "http.request", "body": der, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "https",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": headers,
                "client": ("127.0.0.1", 40000),
                "server": ("bench.local", 443),
            }
            t0 = time.perf_counter()
            await app(scope, receive, send)
            elapsed = (time.perf_counter() - t0) * 1000
            if sent[0]["status"] != 200:
                raise RuntimeError(f"OCSP answered HTTP {sent[0]['status']}")
            return elapsed

        for _ in range(20):
            await one()  # creates the responder and fills the cache
        sem = asyncio.Semaphore(concurrency)

        async def limited() -> float:
            async with sem:
                return await one()

        start = time.perf_counter()
        samples = sorted(await asyncio.gather(*(limited() for _ in range(requests))))
        wall = time.perf_counter() - start
        r = await client.post(
            path, content=der, headers={"Content-Type": "application/ocsp-request"}
        )
        _check_good(r.content)
        return {
            "per_s": requests / wall,
            "p50_ms": statistics.median(samples),
            "p99_ms": _percentile(samples, 0.99),
        }
    finally:
        await client.aclose()
        await runtime.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PLAIN_SERVER = """
import sys, uvicorn
from certctl.app import create_app
from certctl.settings import Settings
uvicorn.run(create_app(Settings.from_env()), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""


def _wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def pct(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"per_s": rate, "p50_ms": pct("50"), "p99_ms": pct("99")}


async def _setup(
    base: str, verify: ssl.SSLContext | bool, *, fresh: bool, data_dir: Path
) -> tuple[str, bytes]:
    """Issue a certificate through a running server (or reuse the last one) and check OCSP."""
    async with httpx.AsyncClient(base_url=base, verify=verify) as client:

        async def wait() -> None:
            await asyncio.sleep(0.1)

        if fresh:
            issuer, _, der = await _issue_one(client, wait)
        else:  # the previous run's issuer and certificate are in the database
            r = await client.get("/api/v1/issuers", headers=_HEADERS)
            issuer = next(i for i in r.json()["data"] if i["name"] == "bench")["id"]
            der = (data_dir / "ocsp.der").read_bytes()
        r = await client.post(
            f"/.well-known/pki/ocsp/{issuer}",
            content=der,
            headers={"Content-Type": "application/ocsp-request"},
        )
        _check_good(r.content)
        return issuer, der


def ocsp_http(
    database_url: str, data_dir: Path, connections: tuple[int, ...], seconds: int
) -> dict[str, dict[int, dict[str, float]]]:
    """``wrk`` against ``certctl serve`` (HTTPS) and against uvicorn over plain HTTP."""
    from certctl.settings import Settings
    from certctl.tls import ensure_server_certificate

    env = dict(
        os.environ,
        CERTCTL_DATA_DIR=str(data_dir),
        CERTCTL_DATABASE_URL=database_url,
        CERTCTL_CONFIG_ENCRYPTION_KEY=ENC_KEY,
        CERTCTL_API_KEYS_NAMED=f"bench:{ADMIN}:admin",
        CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN="0",
        CERTCTL_LOG_LEVEL="warning",
    )
    results: dict[str, dict[int, dict[str, float]]] = {}
    script = data_dir / "ocsp.lua"
    for mode in ("https", "http"):
        port = _free_port()
        env["CERTCTL_SERVER_PORT"] = str(port)
        if mode == "https":
            cert, _ = ensure_server_certificate(Settings.from_env(env))
            verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(cert))
            command = [sys.executable, "-m", "certctl", "serve"]
        else:
            verify = False
            command = [sys.executable, "-c", _PLAIN_SERVER, str(port)]
        base = f"{mode}://127.0.0.1:{port}"
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", verify=verify, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {mode} server did not start")
                time.sleep(0.05)

            issuer, der = asyncio.run(
                _setup(base, verify, fresh=mode == "https", data_dir=data_dir)
            )
            (data_dir / "ocsp.der").write_bytes(der)
            body = "".join(f"\\{b:03d}" for b in der)
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = "{body}"\n'
                'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
            )
            url = f"{base}/.well-known/pki/ocsp/{issuer}"
            results[mode] = {c: _wrk(url, script, c, seconds) for c in connections}
        finally:
            proc.terminate()
            proc.wait(15)
    return results


async def crl_generation(
    database_url: str, data_dir: Path, entries: int, tree_depth: int = 0
) -> dict[str, float]:
    """Seconds to regenerate (read + sign + store) and to GET a CRL of ``entries`` entries."""
    from sqlalchemy import insert, select

    from certctl.app import create_app
    from certctl.db.base import utcnow
    from certctl.db.models import CertificateRevocation, ConnectorInstance
    from certctl.domain.revocation.service import _crl_entries, _issuer, generate_crl

    app = create_app(_settings(database_url, data_dir), background=False)
    runtime = app.state.runtime
    await runtime.start(background=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench.local"
    )
    try:
        issuer_id, cert_id, _ = await _issue_one(client, runtime.worker.drain, tree_depth)
        now = utcnow()
        rows = [
            {
                "id": f"rev-{i:016x}",
                "certificate_id": cert_id,
                "version_id": f"ver-{i:016x}",
                "issuer_id": issuer_id,
                "serial_number": secrets.token_hex(16).lstrip("0") or "1",
                "reason": (1, 4, 5)[i % 3],
                "revoked_at": now - timedelta(seconds=entries - i),
                "revoked_by": "bench",
                "issuer_notified": True,
                "issuer_error": None,
            }
            for i in range(entries)
        ]
        async with runtime.sessions() as session:
            for first in range(0, entries, 5000):
                await session.execute(insert(CertificateRevocation), rows[first : first + 5000])
            await session.commit()
            issuer_row = await session.get(ConnectorInstance, issuer_id)
        assert issuer_row is not None
        async with runtime.sessions() as session:
            t0 = time.perf_counter()
            listed = await _crl_entries(session, issuer_id)
            read_s = time.perf_counter() - t0
        from certctl_sdk.issuer import CrlRequest

        t0 = time.perf_counter()
        await _issuer(runtime, issuer_row).sign_crl(
            CrlRequest(
                crl_number=1, this_update=now, next_update=now + timedelta(hours=1), entries=listed
            )
        )
        sign_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        state = await generate_crl(runtime, issuer_row)
        total_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = await client.get(f"/.well-known/pki/crl/{issuer_id}")
        get_s = time.perf_counter() - t0
        r.raise_for_status()
        crl = x509.load_der_x509_crl(r.content)
        if len(crl) != entries or r.content != state.crl_der:
            raise RuntimeError(f"the CRL lists {len(crl)} entries, expected {entries}")
        async with runtime.sessions() as session:
            assert await session.scalar(
                select(ConnectorInstance.id).where(ConnectorInstance.id == issuer_id)
            )
        return {
            "read_s": read_s,
            "sign_s": sign_s,
            "total_s": total_s,
            "get_s": get_s,
            "bytes": len(r.content),
        }
    finally:
        await client.aclose()
        await runtime.stop()


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@functools.cache
def _softhsm_token() -> Any:
    """A throwaway SoftHSM2 token for this process (Pkcs11Settings); None without softhsm2.

    One per process: SoftHSM reads ``SOFTHSM2_CONF`` once, when the module is first loaded.
    """
    from certctl.lib.pkcs11_settings import Pkcs11Settings

    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM_MODULE).exists():
        return None
    base = Path(tempfile.mkdtemp(prefix="certctl-bench-softhsm-"))
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = f"bench-{secrets.token_hex(4)}"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin", "5678"],
        check=True,
        capture_output=True,
    )
    return Pkcs11Settings(module=SOFTHSM_MODULE, token_label=label, pin="1234")


async def token_signing(
    database_url: str, data_dir: Path, key_store: str, algorithm: str, count: int
) -> dict[str, float]:
    """Leaves/s and OCSP answers/s for a 3-level tree whose CA keys are in ``key_store``."""
    import msgspec
    from cryptography.hazmat.primitives.asymmetric import ec

    from certctl.app import create_app
    from certctl.db.models import ConnectorInstance
    from certctl.lib.keys import build_csr
    from certctl_sdk import IssueRequest, SubjectAltNames

    token = _softhsm_token() if key_store == "pkcs11" else None
    settings = msgspec.structs.replace(_settings(database_url, data_dir), pkcs11=token)
    app = create_app(settings, background=False)
    runtime = app.state.runtime
    await runtime.start(background=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench.local"
    )
    try:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "bench", "type": "local", "config": {}},
            headers=_HEADERS,
        )
        r.raise_for_status()
        issuer_id = r.json()["id"]
        parent = None
        for level in range(1, TREE_DEPTH + 1):
            r = await client.post(
                f"/api/v1/issuers/{issuer_id}/intermediates",
                json={
                    "name": f"level {level}",
                    "parent_ca_id": parent,
                    "key_store": key_store,
                    "algorithm": algorithm,
                    "subject": {"common_name": f"bench {key_store} CA {level}"},
                },
                headers=_HEADERS,
            )
            r.raise_for_status()
            parent = r.json()["id"]
        r = await client.put(
            f"/api/v1/issuers/{issuer_id}/issuing-ca", json={"ca_id": parent}, headers=_HEADERS
        )
        r.raise_for_status()
        async with runtime.sessions() as session:
            row = await session.get(ConnectorInstance, issuer_id)
        issuer = runtime.connectors.instance(row)
        csr = build_csr(
            ec.generate_private_key(ec.SECP256R1()),
            "leaf.bench.example",
            SubjectAltNames(dns=("leaf.bench.example",)),
        )
        request = IssueRequest(
            csr_pem=csr,
            common_name="leaf.bench.example",
            sans=SubjectAltNames(dns=("leaf.bench.example",)),
            validity_seconds=86400,
        )
        await issuer.issue(request)  # loads the CA (and the token signer)
        start = time.perf_counter()
        for _ in range(count):
            issued = await issuer.issue(request)
        leaf_s = count / (time.perf_counter() - start)
        leaf = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
        ca = x509.load_pem_x509_certificate(issued.chain_pem[0].encode())
        # OCSP: the leaf must be one the core knows, so order one through the API.
        r = await client.post(
            "/api/v1/certificates",
            json={"common_name": "ocsp.bench.example", "issuer_id": issuer_id},
            headers=_HEADERS,
        )
        r.raise_for_status()
        cert_id = r.json()["certificate"]["id"]
        await runtime.worker.drain()
        r = await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=_HEADERS)
        r.raise_for_status()
        leaf = x509.load_pem_x509_certificate(r.json()["certificate_pem"].encode())
        path = f"/.well-known/pki/ocsp/{issuer_id}"
        headers = {"Content-Type": "application/ocsp-request"}

        def ocsp_request(nonce: bool) -> bytes:
            builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA256())
            if nonce:
                builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), False)
            return builder.build().public_bytes(serialization.Encoding.DER)

        figures = {"leaf_per_s": leaf_s}
        for nonce, label in ((True, "ocsp_nonce_per_s"), (False, "ocsp_cached_per_s")):
            bodies = [ocsp_request(nonce) for _ in range(count)]
            r = await client.post(path, content=bodies[0], headers=headers)
            _check_good(r.content)
            start = time.perf_counter()
            for body in bodies:
                r = await client.post(path, content=body, headers=headers)
            figures[label] = count / (time.perf_counter() - start)
            _check_good(r.content)
        return figures
    finally:
        await client.aclose()
        await runtime.stop()


def run(
    name: str,
    url: Any,
    base: Path,
    *,
    only: set[str],
    ocsp_requests: int = 5000,
    ocsp_concurrency: int = 16,
    ocsp_seconds: int = 5,
    crl_entries: int = 100_000,
    token_count: int = 300,
) -> None:
    """Print the OCSP, CRL and token figures for one backend; ``url(tag)`` makes a database."""
    if "ocsp" in only:
        for concurrency in (1, ocsp_concurrency):
            rate = asyncio.run(
                ocsp_in_process(
                    url(f"ocspi{concurrency}"), base / f"p{concurrency}", ocsp_requests, concurrency
                )
            )
            print(
                f"  OCSP cached good answers, in-process ASGI (POST, {ocsp_requests} requests, "
                f"{concurrency} in flight): {rate['per_s']:,.0f} responses/s, "
                f"p50 {rate['p50_ms']:.2f} ms, p99 {rate['p99_ms']:.2f} ms"
            )
        rate = asyncio.run(
            ocsp_in_process(
                url("ocspt"), base / "pt", ocsp_requests, ocsp_concurrency, tree_depth=TREE_DEPTH
            )
        )
        print(
            f"  OCSP cached good answers for a leaf under a 3-level CA tree, in-process ASGI "
            f"(POST, {ocsp_requests} requests, {ocsp_concurrency} in flight): "
            f"{rate['per_s']:,.0f} responses/s, p50 {rate['p50_ms']:.2f} ms, "
            f"p99 {rate['p99_ms']:.2f} ms"
        )
        if shutil.which("wrk") is None:
            print("  OCSP over HTTP: skipped (install wrk: apt-get install wrk)")
        else:
            figures = ocsp_http(
                url("ocsph"), Path(tempfile.mkdtemp(dir=base)), (1, ocsp_concurrency), ocsp_seconds
            )
            for mode, label in (("https", "certctl serve, HTTPS"), ("http", "uvicorn, plain HTTP")):
                for connections, rate in figures[mode].items():
                    print(
                        f"  OCSP cached good answers over {label} (wrk, POST, {connections} "
                        f"connection{'s' if connections > 1 else ''}, {ocsp_seconds} s): "
                        f"{rate['per_s']:,.0f} responses/s, p50 {rate['p50_ms']:.2f} ms, "
                        f"p99 {rate['p99_ms']:.2f} ms"
                    )
    if "token" in only:
        if shutil.which("softhsm2-util") is None:
            print("  CA keys in a PKCS#11 token: skipped (install softhsm2)")
        else:
            for key_store, algorithm in (
                ("file", "ECDSA-P256"),
                ("pkcs11", "ECDSA-P256"),
                ("file", "RSA-2048"),
                ("pkcs11", "RSA-2048"),
            ):
                tag = f"tok{key_store}{algorithm[:3].lower()}"
                fig = asyncio.run(
                    token_signing(url(tag), base / tag, key_store, algorithm, token_count)
                )
                where = "SoftHSM2 token" if key_store == "pkcs11" else "file store"
                print(
                    f"  {algorithm} tree CA keys in the {where} ({token_count} each, 1 in "
                    f"flight): {fig['leaf_per_s']:,.0f} leaves signed/s; OCSP with a nonce "
                    f"(signed each time) {fig['ocsp_nonce_per_s']:,.0f}/s, cached "
                    f"{fig['ocsp_cached_per_s']:,.0f}/s (httpx over ASGI)"
                )
    if "crl" in only:
        for depth, where in ((0, ""), (TREE_DEPTH, " from the issuing CA of a 3-level tree")):
            crl = asyncio.run(
                crl_generation(url(f"crl{depth}"), base / f"crl{depth}", crl_entries, depth)
            )
            print(
                f"  CRL with {crl_entries:,} entries{where}: regenerated in "
                f"{crl['total_s']:.2f} s (read {crl['read_s']:.2f} s, Local CA signing "
                f"{crl['sign_s']:.2f} s), GET {crl['get_s'] * 1000:.0f} ms for "
                f"{crl['bytes'] / 1e6:.1f} MB"
            )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="ocsp,crl,token")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from run import _pg, _postgres_admin_url

    only = set(args.only.split(","))
    backends = [("sqlite", None)] + (
        [] if args.sqlite_only else [("postgresql", _postgres_admin_url())]
    )
    for backend, admin in backends:
        base = Path(tempfile.mkdtemp(prefix=f"certctl-pki-{backend}-"))
        dbs: list[str] = []

        def url(
            tag: str,
            *,
            _b: str = backend,
            _a: str | None = admin,
            _base: Path = base,
            _dbs: list[str] = dbs,
        ) -> str:
            if _b == "sqlite":
                return f"sqlite+aiosqlite:///{_base / tag}-{secrets.token_hex(3)}.db"
            assert _a is not None
            db = f"certctl_bench_{tag}_{secrets.token_hex(3)}"
            asyncio.run(_pg(_a, f'CREATE DATABASE "{db}"'))
            _dbs.append(db)
            return "postgresql+asyncpg://" + _a.split("://", 1)[1].rsplit("/", 1)[0] + "/" + db

        print(f"\n[{backend}]")
        try:
            run(backend, url, base, only=only)
        finally:
            for db in dbs:
                assert admin is not None
                asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            shutil.rmtree(base, ignore_errors=True)
