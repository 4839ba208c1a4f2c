"""certctl benchmarks: ``make bench`` (or ``uv run python benchmarks/run.py``).

Prints, for SQLite and PostgreSQL:
  * certificates issued and stored per second through the REST API with the Local CA (P-256),
    beside the bare ceiling (``cryptography`` alone building and signing P-256 leaves);
  * p50/p99 latency of ``GET /api/v1/certificates`` with 10,000 certificates stored;
  * cached OCSP responses per second and their p50/p99 latency, in-process and over HTTP with
    wrk, and a CRL of 100,000 entries (``benchmarks/pki.py``);
  * the renewal scan over 100,000 certificates, and job throughput with one and three
    ``certctl worker`` replicas on PostgreSQL (``benchmarks/lifecycle.py``);
  * p50/p99 of authenticating a request by API key, session cookie and OIDC callback
    (``benchmarks/auth.py``);
  * EST simpleenroll requests per second, anonymous and with HTTP Basic (``benchmarks/est.py``);
  * SCEP PKIOperations per second, issued and resent (``benchmarks/scep.py``);
  * server start time (``certctl serve`` until ``/health`` answers over HTTPS) and app start
    time (factory + migrations + plugin loading).

Requests go through the ASGI interface in-process (httpx.ASGITransport), so the figures are
the server's own cost without a network stack; the start-time figure uses a real process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import auth  # benchmarks/auth.py, lifecycle.py, pki.py: run as a script, this directory is on sys.path
import est
import httpx
import lifecycle
import pki
import scep
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN = "bench-admin-key-0123456789"
ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"


def bare_ceiling(seconds: float = 2.0) -> float:
    """P-256 leaf certificates built and signed per second by cryptography alone."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.now(UTC)
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"h{count}.example")]))
            .issuer_name(name)
            .public_key(leaf_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"h{count}.example")]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        count += 1
    return count / (time.perf_counter() - start)


def _postgres_admin_url() -> str | None:
    url = os.environ.get(
        "CERTCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    try:
        import asyncpg
    except ImportError:
        return None

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return url if asyncio.run(probe()) else None


async def _pg(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _app(database_url: str, data_dir: Path) -> tuple[Any, httpx.AsyncClient]:
    from certctl.app import create_app
    from certctl.settings import Settings, parse_named_api_keys

    settings = Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        config_encryption_key=ENC_KEY,
        api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"),
        database_pool_size=20,
        ocsp_rate_limit_per_ip_min=0,  # every request comes from one address
        rate_limit_enabled=False,  # ...and one key (benchmarks/ratelimit.py measures the limit)
    )
    app = create_app(settings, background=False)
    await app.state.runtime.start(background=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bench.local"
    )
    return app, client


async def issuance(
    database_url: str, data_dir: Path, count: int, concurrency: int, bulk: int = 0
) -> dict[str, float]:
    """Certificates requested over the API, issued by the worker and stored, per second.

    ``bulk`` = 0 sends one ``POST /api/v1/certificates`` per certificate; otherwise requests of
    ``bulk`` certificates go to ``POST /api/v1/certificates/bulk``.
    """
    app, client = await _app(database_url, data_dir)
    runtime = app.state.runtime
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "bench", "type": "local", "config": {}},
            headers=headers,
        )
        r.raise_for_status()
        issuer = r.json()["id"]
        # warm the CA (generated and stored on first use)
        r = await client.post(
            "/api/v1/certificates",
            json={"common_name": "warm.bench.example", "issuer_id": issuer},
            headers=headers,
        )
        r.raise_for_status()
        await runtime.worker.drain()

        sem = asyncio.Semaphore(concurrency)

        def body(i: int) -> dict[str, Any]:
            return {"common_name": f"h{i}.bench.example", "issuer_id": issuer, "validity_days": 30}

        async def one(i: int) -> None:
            async with sem:
                resp = await client.post("/api/v1/certificates", json=body(i), headers=headers)
                resp.raise_for_status()

        async def batch(first: int) -> None:
            async with sem:
                items = [body(i) for i in range(first, min(count, first + bulk))]
                resp = await client.post(
                    "/api/v1/certificates/bulk", json={"certificates": items}, headers=headers
                )
                resp.raise_for_status()

        start = time.perf_counter()
        if bulk:
            api_done = asyncio.gather(*(batch(i) for i in range(0, count, bulk)))
        else:
            api_done = asyncio.gather(*(one(i) for i in range(count)))
        worker_done = asyncio.create_task(_drain_until(runtime, count + 1))
        await api_done
        await worker_done
        elapsed = time.perf_counter() - start
        r = await client.get(
            "/api/v1/certificates", params={"status": "active", "per_page": 1}, headers=headers
        )
        active = r.json()["total"]
        if active != count + 1:
            raise RuntimeError(f"expected {count + 1} active certificates, found {active}")
        return {"issued_per_s": count / elapsed, "seconds": elapsed}
    finally:
        await client.aclose()
        await runtime.stop()


async def worker_alone(database_url: str, data_dir: Path, count: int) -> float:
    """Issuance jobs completed per second by one worker, with ``count`` jobs already queued."""
    app, client = await _app(database_url, data_dir)
    runtime = app.state.runtime
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "bench", "type": "local", "config": {}},
            headers=headers,
        )
        r.raise_for_status()
        issuer = r.json()["id"]
        for first in range(0, count, 500):
            items = [
                {"common_name": f"w{i}.bench.example", "issuer_id": issuer}
                for i in range(first, min(count, first + 500))
            ]
            resp = await client.post(
                "/api/v1/certificates/bulk", json={"certificates": items}, headers=headers
            )
            resp.raise_for_status()
        start = time.perf_counter()
        await _drain_until(runtime, count)
        return count / (time.perf_counter() - start)
    finally:
        await client.aclose()
        await runtime.stop()


async def split_processes(database_url: str, data_dir: Path, count: int) -> float:
    """End to end with the API in this process and ``certctl worker`` in another (PostgreSQL).

    This is the scale-out shape: stateless API replicas and workers sharing one database.
    """
    from sqlalchemy import func, select

    from certctl.db.models import ManagedCertificate

    app, client = await _app(database_url, data_dir)  # migrates; runs no worker of its own
    runtime = app.state.runtime
    headers = {"Authorization": f"Bearer {ADMIN}"}
    env = dict(
        os.environ,
        CERTCTL_DATABASE_URL=database_url,
        CERTCTL_DATA_DIR=str(data_dir),
        CERTCTL_CONFIG_ENCRYPTION_KEY=ENC_KEY,
        CERTCTL_LOG_LEVEL="warning",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "certctl", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "bench", "type": "local", "config": {}},
            headers=headers,
        )
        r.raise_for_status()
        issuer = r.json()["id"]
        r = await client.post(
            "/api/v1/certificates",
            json={"common_name": "warm.bench.example", "issuer_id": issuer},
            headers=headers,
        )
        r.raise_for_status()

        async def active() -> int:
            async with runtime.sessions() as session:
                n = await session.scalar(
                    select(func.count())
                    .select_from(ManagedCertificate)
                    .where(ManagedCertificate.status == "active")
                )
            return int(n or 0)

        while await active() < 1:  # the worker process is up and the CA exists
            if worker.poll() is not None:
                raise RuntimeError("certctl worker exited")
            await asyncio.sleep(0.05)
        start = time.perf_counter()
        for first in range(0, count, 500):
            items = [
                {"common_name": f"s{i}.bench.example", "issuer_id": issuer}
                for i in range(first, min(count, first + 500))
            ]
            resp = await client.post(
                "/api/v1/certificates/bulk", json={"certificates": items}, headers=headers
            )
            resp.raise_for_status()
        while await active() < count + 1:
            if worker.poll() is not None:
                raise RuntimeError("certctl worker exited")
            await asyncio.sleep(0.02)
        return count / (time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(30)
        await client.aclose()
        await runtime.stop()


async def _drain_until(runtime: Any, expected_active: int) -> None:
    from sqlalchemy import func, select

    from certctl.db.models import ManagedCertificate

    while True:
        ran = await runtime.worker.run_once()
        if ran == 0:
            async with runtime.sessions() as session:
                active = await session.scalar(
                    select(func.count())
                    .select_from(ManagedCertificate)
                    .where(ManagedCertificate.status == "active")
                )
            if active >= expected_active:
                return
            await asyncio.sleep(0.005)


async def list_latency(
    database_url: str, data_dir: Path, rows: int, requests: int
) -> dict[str, float]:
    """p50/p99 of GET /api/v1/certificates (first page of 50) with ``rows`` stored."""
    from certctl.db.base import utcnow
    from certctl.db.models import ConnectorInstance, ManagedCertificate

    app, client = await _app(database_url, data_dir)
    runtime = app.state.runtime
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        now = utcnow()
        async with runtime.sessions() as session:
            session.add(
                ConnectorInstance(
                    id="iss-bench",
                    family="issuer",
                    name="bench",
                    kind="local",
                    config={},
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            batch = []
            for i in range(rows):
                batch.append(
                    {
                        "id": f"mc-{i:08d}",
                        "name": f"h{i}.bench.example",
                        "common_name": f"h{i}.bench.example",
                        "sans": [f"h{i}.bench.example"],
                        "key_type": "ecdsa-p256",
                        "ekus": ["serverAuth"],
                        "validity_seconds": 30 * 86400,
                        "issuer_id": "iss-bench",
                        "environment": "bench",
                        "tags": {},
                        "status": "active",
                        "serial_number": secrets.token_hex(16),
                        "expires_at": now + timedelta(days=30 + i % 30),
                        "source": "api",
                        "created_at": now - timedelta(seconds=i),
                        "updated_at": now,
                    }
                )
            await session.execute(ManagedCertificate.__table__.insert(), batch)
            await session.commit()
        for _ in range(20):
            (await client.get("/api/v1/certificates", headers=headers)).raise_for_status()
        samples = []
        for _ in range(requests):
            t0 = time.perf_counter()
            r = await client.get("/api/v1/certificates", headers=headers)
            samples.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        assert r.json()["total"] == rows
        samples.sort()
        return {
            "p50_ms": statistics.median(samples),
            "p99_ms": samples[int(len(samples) * 0.99) - 1],
        }
    finally:
        await client.aclose()
        await runtime.stop()


async def app_start(database_url: str, data_dir: Path) -> float:
    """Seconds from create_app to a migrated, ready runtime on an empty database."""
    from certctl.app import create_app
    from certctl.settings import Settings

    t0 = time.perf_counter()
    app = create_app(
        Settings(data_dir=str(data_dir), database_url=database_url, config_encryption_key=ENC_KEY),
        background=False,
    )
    await app.state.runtime.start(background=False)
    elapsed = time.perf_counter() - t0
    await app.state.runtime.stop()
    return elapsed


def process_start(data_dir: Path) -> float:
    """Seconds from launching ``certctl serve`` to its first HTTPS /health answer."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        CERTCTL_DATA_DIR=str(data_dir),
        CERTCTL_SERVER_PORT=str(port),
        CERTCTL_CONFIG_ENCRYPTION_KEY=ENC_KEY,
    )
    # generate the TLS certificate first: first-start generation is not what we time
    from certctl.settings import Settings
    from certctl.tls import ensure_server_certificate

    cert, _ = ensure_server_certificate(Settings.from_env(env))
    ctx = ssl.create_default_context(cafile=str(cert))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "certctl", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/health", verify=ctx, timeout=1)
                if r.status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("certctl serve exited during start")
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="certificates to issue per backend")
    parser.add_argument("--bulk-count", type=int, default=10_000, help="certificates via /bulk")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--ocsp-requests", type=int, default=5000, help="cached OCSP requests")
    parser.add_argument("--ocsp-concurrency", type=int, default=16)
    parser.add_argument("--crl-entries", type=int, default=100_000)
    parser.add_argument("--fleet", type=int, default=100_000, help="certificates for the scan")
    parser.add_argument("--due", type=int, default=100_000, help="of which due for renewal")
    parser.add_argument("--replica-jobs", type=int, default=5000, help="jobs per replica run")
    parser.add_argument("--auth-requests", type=int, default=20_000, help="timed authentications")
    parser.add_argument("--scep-requests", type=int, default=300, help="SCEP enrolments")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: issuance,list,start,ocsp,crl,scan,replicas,auth,est,scep,token",
    )
    parser.add_argument("--est-enrollments", type=int, default=500, help="EST simpleenroll CSRs")
    parser.add_argument("--est-concurrency", type=int, default=16)
    args = parser.parse_args()
    # As `certctl serve` does: no per-request client lines or per-plugin migration chatter.
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sections = {
        "issuance",
        "list",
        "start",
        "ocsp",
        "crl",
        "scan",
        "replicas",
        "auth",
        "est",
        "scep",
        "token",
    }
    only = set(filter(None, args.only.split(","))) or sections

    ceiling = bare_ceiling()
    print(
        f"bare ceiling: cryptography builds+signs {ceiling:,.0f} P-256 leaf certificates/s on one core"
    )
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    pg_admin = _postgres_admin_url()
    backends.append(("postgresql", pg_admin))
    for name, admin in backends:
        base = Path(tempfile.mkdtemp(prefix=f"certctl-bench-{name}-"))
        dbs: list[str] = []

        def url(
            tag: str,
            *,
            _name: str = name,
            _admin: str | None = admin,
            _base: Path = base,
            _dbs: list[str] = dbs,
        ) -> str:
            if _name == "sqlite":
                return f"sqlite+aiosqlite:///{_base / tag}.db"
            assert _admin is not None
            db = f"certctl_bench_{tag}_{secrets.token_hex(3)}"
            asyncio.run(_pg(_admin, f'CREATE DATABASE "{db}"'))
            _dbs.append(db)
            return "postgresql+asyncpg://" + _admin.split("://", 1)[1].rsplit("/", 1)[0] + "/" + db

        if name == "postgresql" and admin is None:
            print("postgresql: skipped (no server; set CERTCTL_TEST_POSTGRES_URL)")
            continue
        try:
            print(f"\n[{name}]")
            if "start" in only:
                start_s = asyncio.run(app_start(url("start"), base / "d0"))
                print(
                    f"  app start (factory + migrations + plugins, empty database): {start_s:.2f} s"
                )
            if "issuance" in only:
                issued = asyncio.run(
                    issuance(url("issue"), base / "d1", args.count, args.concurrency)
                )
                bulk = asyncio.run(
                    issuance(url("bulk"), base / "d3", args.bulk_count, args.concurrency, bulk=500)
                )
                alone = asyncio.run(worker_alone(url("worker"), base / "d4", args.bulk_count))
                split = (
                    asyncio.run(split_processes(url("split"), base / "d5", args.bulk_count))
                    if name == "postgresql"
                    else None
                )
                print(
                    f"  issuance via API (Local CA, P-256, {args.count} certs, {args.concurrency} in flight): "
                    f"{issued['issued_per_s']:,.0f} certs/s  ({issued['issued_per_s'] / ceiling:.1%} of the bare ceiling)"
                )
                print(
                    f"  issuance via bulk API (500 per request, {args.bulk_count} certs): "
                    f"{bulk['issued_per_s']:,.0f} certs/s  ({bulk['issued_per_s'] / ceiling:.1%} of the bare ceiling)"
                )
                print(
                    f"  worker alone ({args.bulk_count} issuance jobs queued, one process): "
                    f"{alone:,.0f} certs/s  ({alone / ceiling:.1%} of the bare ceiling)"
                )
                if split is not None:
                    print(
                        f"  issuance via bulk API, API and `certctl worker` in separate processes: "
                        f"{split:,.0f} certs/s  ({split / ceiling:.1%} of the bare ceiling)"
                    )
            if "list" in only:
                latency = asyncio.run(
                    list_latency(url("list"), base / "d2", args.rows, args.requests)
                )
                print(
                    f"  GET /api/v1/certificates with {args.rows:,} stored: p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms"
                )
            lifecycle.run(
                name,
                url,
                base,
                only=only,
                fleet=args.fleet,
                due=args.due,
                replica_jobs=args.replica_jobs,
            )
            auth.run(name, url, base, only=only, requests=args.auth_requests)
            est.run(
                name,
                url,
                base,
                only=only,
                enrollments=args.est_enrollments,
                concurrency=args.est_concurrency,
            )
            pki.run(
                name,
                url,
                base,
                only=only,
                ocsp_requests=args.ocsp_requests,
                ocsp_concurrency=args.ocsp_concurrency,
                crl_entries=args.crl_entries,
            )
            scep.run(name, url, base, only=only, requests=args.scep_requests)
        finally:
            for db in dbs:
                assert admin is not None
                asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            shutil.rmtree(base, ignore_errors=True)
    if "start" not in only:
        return
    base = Path(tempfile.mkdtemp(prefix="certctl-bench-proc-"))
    try:
        first = process_start(base)
        again = process_start(base)
        print(
            "\nserver process start (certctl serve → first HTTPS /health, SQLite): "
            f"{first:.2f} s on an empty data directory, {again:.2f} s on restart"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
