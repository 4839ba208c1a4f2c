"""EST benchmark: ``simpleenroll`` requests per second, end to end in one process.

Called by ``benchmarks/run.py`` (``--only est``), or alone: ``uv run python benchmarks/est.py
[--enrollments N --concurrency C]`` (SQLite, and PostgreSQL when one answers). Per backend:

* anonymous enrollment: base64 CSR in → CSR checks → certificate + issuance job committed →
  worker woken → Local CA (P-256) signs in the job engine → the request sees the job done →
  certs-only PKCS#7 out. ``C`` requests in flight, each with its own fresh CSR (made untimed);
* the same with HTTP Basic: every request also verifies the enrollment password (Argon2id,
  19 MiB, 2 passes, at most ``CERTCTL_BREAKGLASS_HASH_CONCURRENCY`` at once), which is the
  price of Basic and shows as the difference.

The app runs in-process (httpx.ASGITransport) with its worker and scheduler, as ``certctl
serve`` does, so the figure is the server's cost without TLS and the network stack.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"
ADMIN = "bench-admin-key-0123456789"
PASSWORD = "bench-enroll-secret"  # noqa: S105 - a throwaway benchmark credential


def _csrs(count: int) -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())  # one key: the CSR's names make each unique
    out = []
    for index in range(count):
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"d{index}.est.example")])
            )
            .sign(key, hashes.SHA256())
        )
        out.append(base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)))
    return out


async def enrollments_per_second(
    database_url: str, data_dir: Path, count: int, concurrency: int, *, basic: bool
) -> float:
    """``count`` simpleenroll requests, ``concurrency`` at once; returns requests/s."""
    from certctl.app import create_app
    from certctl.domain.est.settings import EstSettings
    from certctl.settings import Settings, parse_named_api_keys

    env = {"CERTCTL_EST_ENABLED": "true", "CERTCTL_EST_PROFILE_ID": "est-bench"}
    if basic:
        env |= {
            "CERTCTL_EST_ALLOWED_AUTH_MODES": "basic",
            "CERTCTL_EST_ENROLLMENT_PASSWORD": PASSWORD,
        }
    settings = Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        config_encryption_key=ENC_KEY,
        api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"),
        rate_limit_enabled=False,
        est=EstSettings.from_env(env),
        worker_poll_interval=0.05,
    )
    app = create_app(settings, background=True)
    runtime = app.state.runtime
    await runtime.start(background=True)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    headers = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"est:{PASSWORD}".encode()).decode()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
        base_url="https://bench.local",
        timeout=120,
    )
    try:
        r = await client.post(
            "/api/v1/issuers", json={"name": "bench", "type": "local", "config": {}}, headers=admin
        )
        r.raise_for_status()
        r = await client.post(
            "/api/v1/profiles",
            json={"name": "est-bench", "issuer_id": r.json()["id"]},
            headers=admin,
        )
        r.raise_for_status()
        bodies = _csrs(count + 20)
        for body in bodies[count:]:  # warm up: the CA key, code paths, the connection pool
            r = await client.post("/.well-known/est/simpleenroll", content=body, headers=headers)
            assert r.status_code == 200, r.text
        slots = asyncio.Semaphore(concurrency)

        async def one(body: bytes) -> None:
            async with slots:
                response = await client.post(
                    "/.well-known/est/simpleenroll", content=body, headers=headers
                )
            assert response.status_code == 200, response.text

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies[:count]))
        return count / (time.perf_counter() - start)
    finally:
        await client.aclose()
        await runtime.stop()


def run(
    name: str,
    url: Callable[[str], str],
    base: Path,
    *,
    only: set[str],
    enrollments: int,
    concurrency: int,
) -> None:
    """Print the EST figures for one backend."""
    if "est" not in only:
        return
    for basic in (False, True):
        rate = asyncio.run(
            enrollments_per_second(
                url("estb" if basic else "esta"), base / ("e2" if basic else "e1"),
                enrollments, concurrency, basic=basic,
            )
        )  # fmt: skip
        how = "HTTP Basic (Argon2id per request)" if basic else "anonymous"
        print(
            f"  EST simpleenroll, {how}, {enrollments} CSRs, {concurrency} in flight: "
            f"{rate:,.0f} enrollments/s"
        )


def main() -> None:
    import run as bench  # benchmarks/run.py: the backends and their databases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    backends.append(("postgresql", bench._postgres_admin_url()))
    for name, admin in backends:
        if admin is None and name == "postgresql":
            print("postgresql: skipped (no server; set CERTCTL_TEST_POSTGRES_URL)")
            continue
        base = Path(tempfile.mkdtemp(prefix=f"certctl-bench-est-{name}-"))
        dbs: list[str] = []

        def url(tag: str, *, _name: str = name, _admin: str | None = admin,
                _base: Path = base, _dbs: list[str] = dbs) -> str:  # fmt: skip
            if _name == "sqlite":
                return f"sqlite+aiosqlite:///{_base / tag}.db"
            assert _admin is not None
            db = f"certctl_bench_{tag}_{time.monotonic_ns() % 10**9}"
            asyncio.run(bench._pg(_admin, f'CREATE DATABASE "{db}"'))
            _dbs.append(db)
            return "postgresql+asyncpg://" + _admin.split("://", 1)[1].rsplit("/", 1)[0] + "/" + db

        try:
            print(f"[{name}]")
            run(name, url, base, only={"est"}, enrollments=args.enrollments,
                concurrency=args.concurrency)  # fmt: skip
        finally:
            for db in dbs:
                assert admin is not None
                asyncio.run(bench._pg(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
