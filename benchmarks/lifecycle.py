"""Lifecycle-engine benchmarks: the renewal scan over a large fleet, and job throughput when one
or three ``certctl worker`` replicas share a PostgreSQL database.

Called by ``benchmarks/run.py`` (``--only scan,replicas``); each function prints its figures.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"


def _settings(database_url: str, data_dir: Path) -> Any:
    from certctl.settings import Settings

    return Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        config_encryption_key=ENC_KEY,
        database_pool_size=10,
    )


async def renewal_scan(database_url: str, data_dir: Path, fleet: int, due: int) -> dict[str, float]:
    """Seconds for one renewal scan over ``fleet`` stored certificates of which ``due`` are due.

    Rows are inserted directly (a realistic fleet shape: active, issued, renewal times spread
    over the next 60 days), then the scan runs as the ``renewal-check`` loop runs it.
    """
    from sqlalchemy import func, insert, select

    from certctl.db.base import new_id, utcnow
    from certctl.db.models import ConnectorInstance, Job, ManagedCertificate
    from certctl.runtime import Runtime
    from certctl.worker.renewal import scan_for_renewals

    runtime = Runtime(_settings(database_url, data_dir))
    await runtime.start(background=False)
    try:
        now = utcnow()
        issuer = new_id("iss")
        async with runtime.sessions.begin() as session:
            session.add(
                ConnectorInstance(
                    id=issuer, family="issuer", name="bench", kind="local", config={}, enabled=True
                )
            )
        for first in range(0, fleet, 2000):
            rows = []
            for i in range(first, min(fleet, first + 2000)):
                renew_at = (
                    now - timedelta(minutes=1 + i % 600)
                    if i < due
                    else now + timedelta(minutes=1 + (i * 37) % 86400)
                )
                rows.append(
                    {
                        "id": f"mc-bench{i:08d}",
                        "name": f"h{i}.bench.example",
                        "common_name": f"h{i}.bench.example",
                        "sans": [],
                        "key_type": "ecdsa-p256",
                        "ekus": ["serverAuth"],
                        "validity_seconds": 90 * 86400,
                        "issuer_id": issuer,
                        "environment": "",
                        "tags": {},
                        "status": "active",
                        "expires_at": renew_at + timedelta(days=30),
                        "renew_at": renew_at,
                        "current_version_id": f"ver-bench{i:08d}",
                        "source": "api",
                        "created_by": "bench",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            async with runtime.sessions.begin() as session:
                await session.execute(insert(ManagedCertificate), rows)
        started = time.perf_counter()
        created = await scan_for_renewals(runtime)
        first_scan = time.perf_counter() - started
        started = time.perf_counter()
        again = await scan_for_renewals(runtime)
        second_scan = time.perf_counter() - started
        async with runtime.sessions() as session:
            jobs = await session.scalar(select(func.count()).select_from(Job))
        if not (created == due == jobs and again == 0):
            raise RuntimeError(f"scan miscounted: {created=} {due=} {jobs=} {again=}")
        return {"first_s": first_scan, "again_s": second_scan}
    finally:
        await runtime.stop()


async def replica_throughput(database_url: str, data_dir: Path, count: int, replicas: int) -> float:
    """Issuance jobs completed per second by ``replicas`` ``certctl worker`` processes.

    The workers start first and register with the scheduler; the jobs are then queued through
    the bulk API of an in-process app that runs no worker, and the clock stops when every
    certificate is active.
    """
    import httpx
    from sqlalchemy import func, select

    from certctl.app import create_app
    from certctl.db.models import ManagedCertificate, SchedulerReplica
    from certctl.settings import parse_named_api_keys

    key = "bench-replicas-admin-key-0123456789"
    settings = _settings(database_url, data_dir)
    settings = type(settings)(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "api_keys_named": parse_named_api_keys(f"bench:{key}:admin"),
        }
    )
    app = create_app(settings, background=False)
    runtime = app.state.runtime
    await runtime.start(background=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://b.local")
    headers = {"Authorization": f"Bearer {key}"}
    env = dict(
        os.environ,
        CERTCTL_DATABASE_URL=database_url,
        CERTCTL_DATA_DIR=str(data_dir),
        CERTCTL_CONFIG_ENCRYPTION_KEY=ENC_KEY,
        CERTCTL_LOG_LEVEL="warning",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "certctl", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(replicas)
    ]

    async def scalar(query: Any) -> int:
        async with runtime.sessions() as session:
            return int(await session.scalar(query) or 0)

    try:
        while await scalar(select(func.count()).select_from(SchedulerReplica)) < replicas:
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("certctl worker exited")
            await asyncio.sleep(0.1)
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "bench", "type": "local", "config": {}},
            headers=headers,
        )
        r.raise_for_status()
        issuer = r.json()["id"]
        active = (
            select(func.count())
            .select_from(ManagedCertificate)
            .where(ManagedCertificate.status == "active")
        )
        started = time.perf_counter()
        for first in range(0, count, 500):
            items = [
                {"common_name": f"r{i}.bench.example", "issuer_id": issuer}
                for i in range(first, min(count, first + 500))
            ]
            resp = await client.post(
                "/api/v1/certificates/bulk", json={"certificates": items}, headers=headers
            )
            resp.raise_for_status()
        while await scalar(active) < count:
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("certctl worker exited")
            await asyncio.sleep(0.02)
        return count / (time.perf_counter() - started)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        await client.aclose()
        await runtime.stop()


def run(
    name: str,
    url: Callable[[str], str],
    base: Path,
    *,
    only: set[str],
    fleet: int,
    due: int,
    replica_jobs: int,
) -> None:
    """Print the lifecycle figures for one backend."""
    if "scan" in only:
        scan = asyncio.run(renewal_scan(url("scan"), base / "scan", fleet, due))
        print(
            f"  renewal scan, {fleet:,} certificates stored, {due:,} due: "
            f"{scan['first_s']:.2f} s to find and enqueue them "
            f"({due / scan['first_s']:,.0f} /s), next scan (nothing new) {scan['again_s'] * 1000:.0f} ms"
        )
    if "replicas" in only and name == "postgresql":
        for replicas in (1, 3):
            rate = asyncio.run(
                replica_throughput(
                    url(f"rep{replicas}"), base / f"rep{replicas}", replica_jobs, replicas
                )
            )
            print(
                f"  job throughput, {replicas} `certctl worker` replica(s), {replica_jobs:,} "
                f"issuance jobs queued via the bulk API: {rate:,.0f} certs/s"
            )
