"""SCEP benchmark: PKIOperations per second (``uv run python benchmarks/scep.py``, or run.py).

Prints, per database backend:

* full enrolments per second: PKCSReq (RSA-2048 device keys, AES-256 envelope, SHA-256) →
  challenge check → issuance job through the worker (Local CA, P-256) → signed CertRep with the
  certificate enveloped to the device, ``C`` requests in flight, in-process over ASGI;
* resent requests per second: the same messages again, answered from their transactions
  (signature check, decryption, lookup, CertRep): SCEP's own cost without issuance;
* the bare ceiling: parse + verify + decrypt + build a SUCCESS CertRep, no database, one core.

Messages are built before the clock starts (the client's RSA work is not the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from scep_client import CHALLENGE, Device, make_csr  # tests/integration/scep_client.py

from certctl_sdk.models import KeyType
from certctl_sdk.testing import TestCA

ADMIN = "bench-admin-key-0123456789"
ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"
KEYS = 16


def _ra(directory: Path) -> tuple[Path, Path]:
    leaf = TestCA.create().issue("bench SCEP RA", key_type=KeyType.RSA_2048)
    cert, key = directory / "ra.pem", directory / "ra.key"
    cert.write_text(leaf.certificate_pem)
    key.write_text(leaf.key_pem)
    key.chmod(0o600)
    return cert, key


def _messages(count: int, ra: Any) -> list[tuple[Device, bytes]]:
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(KEYS)]
    out = []
    for index in range(count):
        device = Device(key=keys[index % KEYS])
        out.append(
            (device, device.message(device.envelope(make_csr(device.key, f"dev-{index}"), ra)))
        )
    return out


def bare_ceiling(seconds: float = 2.0) -> float:
    """PKIOperations handled per second by the CMS code alone (no database, no issuance)."""
    from cryptography import x509

    from certctl.domain.scep import certrep, cms
    from certctl.domain.scep.settings import ScepProfileSettings, load_ra

    with tempfile.TemporaryDirectory() as d:
        cert, key = _ra(Path(d))
        ra = load_ra(ScepProfileSettings(name="b", profile_id="p", ra_cert_path=str(cert),
                                         ra_key_path=str(key)))  # fmt: skip
    device, message = _messages(1, ra.certificate)[0]
    issued = x509.load_pem_x509_certificate(TestCA.create().issue("leaf").certificate_pem.encode())
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        request = cms.parse_request(message)
        cms.open_envelope(request.content, ra.certificate, ra.key, allow_single_des=False)
        certrep.build_cert_rep(status="0", transaction_id=request.transaction_id,
                           recipient_nonce=request.sender_nonce, recipient=request.signer,
                           ra_certificate=ra.certificate, ra_key=ra.key,
                           digest_oid=request.digest_oid, issued=[issued])  # fmt: skip
        count += 1
    del device
    return count / (time.perf_counter() - start)


async def _timed(client: httpx.AsyncClient, messages: list[bytes], concurrency: int) -> float:
    queue = list(messages)
    statuses: list[int] = []

    async def worker() -> None:
        while queue:
            body = queue.pop()
            r = await client.post("/scep/bench?operation=PKIOperation", content=body)
            statuses.append(r.status_code)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    assert statuses == [200] * len(messages), set(statuses)
    return len(messages) / elapsed


async def enrolments(
    database_url: str, data_dir: Path, count: int, concurrency: int
) -> dict[str, float]:
    """Full enrolments per second, then the same messages resent."""
    from certctl.app import create_app
    from certctl.domain.scep.settings import ScepProfileSettings, ScepSettings, load_ra
    from certctl.settings import Settings, parse_named_api_keys

    data_dir.mkdir(parents=True, exist_ok=True)
    cert, key = _ra(data_dir)
    profile = ScepProfileSettings(name="bench", profile_id="bench-scep", challenge_password=CHALLENGE,
                                  ra_cert_path=str(cert), ra_key_path=str(key))  # fmt: skip
    settings = Settings(
        data_dir=str(data_dir), database_url=database_url, config_encryption_key=ENC_KEY,
        api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"), database_pool_size=20,
        rate_limit_enabled=False,
        scep=ScepSettings(enabled=True, profiles=(profile,), issuance_wait_seconds=60),
    )  # fmt: skip
    app = create_app(settings, background=True)
    await app.state.runtime.start(background=True)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://bench.local", timeout=120) as client:  # fmt: skip
        r = await client.post("/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}},
                              headers=headers)  # fmt: skip
        assert r.status_code == 201, r.text
        r = await client.post("/api/v1/profiles", headers=headers,
                              json={"name": "bench-scep", "issuer_id": r.json()["id"]})  # fmt: skip
        assert r.status_code == 201, r.text
        ra = load_ra(profile).certificate
        built = [m for _, m in _messages(count, ra)]
        warm = [m for _, m in _messages(4, ra)]
        await _timed(client, warm, 2)  # CA generation, connection pools
        issued = await _timed(client, built, concurrency)
        resent = await _timed(client, built, concurrency)
    await app.state.runtime.stop()
    return {"issued_per_s": issued, "resent_per_s": resent}


def run(name: str, url: Any, base: Path, *, only: set[str], requests: int = 300,
        concurrency: int = 16) -> None:  # fmt: skip
    """Print the SCEP figures for one backend; ``url(tag)`` makes a fresh database."""
    if "scep" not in only:
        return
    rates = asyncio.run(enrolments(url("scep"), base / "scep", requests, concurrency))
    print(
        f"  SCEP PKCSReq enrolments (in-process ASGI, {requests} devices, {concurrency} in "
        f"flight, Local CA P-256): {rates['issued_per_s']:,.0f} PKIOperations/s issued; "
        f"resent (answered from the transaction): {rates['resent_per_s']:,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    for noisy in ("httpx", "httpcore", "alembic", "certctl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(
        f"bare ceiling: {bare_ceiling():,.0f} PKIOperations/s (CMS parse+verify+decrypt+CertRep, one core)"
    )
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        print("[sqlite]")
        run("sqlite", lambda tag: f"sqlite+aiosqlite:///{base / tag}.db", base, only={"scep"},
            requests=args.requests, concurrency=args.concurrency)  # fmt: skip
        pg = os.environ.get("CERTCTL_TEST_POSTGRES_URL")
        if pg:
            print("[postgresql] (run benchmarks/run.py --only scep for a fresh database)")


if __name__ == "__main__":
    main()
