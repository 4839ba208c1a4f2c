"""Rate-limit benchmarks: what the request limiter costs per request, on SQLite and PostgreSQL.

``uv run python benchmarks/ratelimit.py`` prints, per backend:

* the limiter alone (:meth:`RateLimiter.take` in a loop on one key that is never refused):
  in-process buckets (SQLite), shared buckets with leases of 10 (the default) and exact shared
  buckets (lease 1: one ``INSERT … ON CONFLICT DO UPDATE`` per request);
* a refused key (the flood case): the refusal is remembered, so it costs no statement;
* ``GET /api/v1/auth/check`` with an API key through ASGI, p50/p99, with the limiter off and
  on, so the limiter's share of a cheap authenticated request is visible.

PostgreSQL comes from ``CERTCTL_TEST_POSTGRES_URL`` or a trust server on 127.0.0.1:5432; a
throwaway database is created and dropped. Without one, only SQLite is measured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["run"]

ADMIN = "bench-admin-key-0123456789"
ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"


def _admin_url() -> str:
    return os.environ.get(
        "CERTCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


async def _postgres_database() -> str | None:
    """A fresh PostgreSQL database URL (asyncpg driver), or None without a server."""
    import asyncpg

    try:
        conn = await asyncpg.connect(_admin_url(), timeout=3)
    except Exception:
        return None
    name = f"certctl_bench_rl_{secrets.token_hex(4)}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return "postgresql+asyncpg://" + _admin_url().split("://", 1)[1].rsplit("/", 1)[0] + "/" + name


async def _drop(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(_admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


async def _per_call(fn: Any, n: int) -> float:
    for _ in range(min(200, n)):
        await fn()
    started = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - started) / n


async def limiter_alone(database_url: str, n: int) -> dict[str, float]:
    """Microseconds per :meth:`RateLimiter.take` (never refused, then refused)."""
    from certctl.db.engine import create_engine
    from certctl.db.migrate import migrate
    from certctl.lib.ratelimit import Budget, RateLimiter

    engine = create_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    roomy = Budget(rate=1e6, burst=10**9)
    EMPTY = Budget(rate=0.001, burst=1)  # noqa: N806 - a constant of this function
    results: dict[str, float] = {}
    for label, lease in (("lease 10", 10), ("exact", 1)):
        limiter = RateLimiter(database_url, lease=lease)
        try:

            async def take(limiter: RateLimiter = limiter, label: str = label) -> None:
                await limiter.take(f"bench:{label}", roomy)

            results[label if limiter.is_shared else "in process"] = _us(await _per_call(take, n))
            await limiter.take(f"bench:empty:{label}", EMPTY)

            async def refused(limiter: RateLimiter = limiter, label: str = label) -> None:
                await limiter.take(f"bench:empty:{label}", EMPTY)

            results["refused" + ("" if limiter.is_shared else " (in process)")] = _us(
                await _per_call(refused, n)
            )
        finally:
            await limiter.aclose()
        if not limiter.is_shared:
            break  # SQLite: leases do not apply
    return results


async def request_cost(database_url: str, data_dir: Path, n: int) -> dict[str, dict[str, float]]:
    """p50/p99 microseconds of ``GET /api/v1/auth/check`` with the limiter off and on."""
    from certctl.app import create_app
    from certctl.settings import Settings, parse_named_api_keys

    results: dict[str, dict[str, float]] = {}
    shared = database_url.startswith("postgresql")
    variants: list[tuple[str, dict[str, Any]]] = [
        ("limiter off", {"rate_limit_enabled": False}),
        ("limiter on" + (", lease 10" if shared else ""), {}),
    ]
    if shared:
        variants.append(("limiter on, exact", {"rate_limit_lease": 1}))
    for label, overrides in variants:
        settings = Settings(
            data_dir=str(data_dir),
            database_url=database_url,
            config_encryption_key=ENC_KEY,
            api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"),
            rate_limit_per_user_rps=1e6,
            rate_limit_per_user_burst=10**9,
            **overrides,
        )
        app = create_app(settings, background=False)
        await app.state.runtime.start(background=False)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://bench.local"
        )
        headers = {"Authorization": f"Bearer {ADMIN}"}
        try:
            for _ in range(200):
                (await client.get("/api/v1/auth/check", headers=headers)).raise_for_status()
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                r = await client.get("/api/v1/auth/check", headers=headers)
                samples.append(time.perf_counter() - started)
                r.raise_for_status()
            samples.sort()
            results[label] = {
                "p50_us": _us(statistics.median(samples)),
                "p99_us": _us(samples[int(len(samples) * 0.99) - 1]),
            }
        finally:
            await client.aclose()
            await app.state.runtime.stop()
    return results


async def run(n: int = 3000) -> dict[str, Any]:
    """Every figure, per backend."""
    logging.disable(logging.WARNING)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="certctl-bench-rl-") as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        out["sqlite"] = {
            "take_us": await limiter_alone(sqlite, n),
            "request": await request_cost(sqlite, Path(tmp), n),
        }
        postgres = await _postgres_database()
        if postgres is not None:
            try:
                out["postgresql"] = {
                    "take_us": await limiter_alone(postgres, n),
                    "request": await request_cost(postgres, Path(tmp), n),
                }
            finally:
                await _drop(postgres)
    return out


def main() -> None:
    results = asyncio.run(run())
    for backend, figures in results.items():
        print(f"{backend}:")
        for label, value in figures["take_us"].items():
            print(f"  RateLimiter.take, {label:<22} {value:>8.1f} µs")
        for label, value in figures["request"].items():
            print(
                f"  GET /api/v1/auth/check, {label:<20} "
                f"p50 {value['p50_us']:>7.1f} µs  p99 {value['p99_us']:>7.1f} µs"
            )


if __name__ == "__main__":
    main()
