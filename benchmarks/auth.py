"""Authentication benchmarks: the p50/p99 cost of authenticating one request.

Called by ``benchmarks/run.py`` (``--only auth``). Figures, per backend:

* the authentication chain alone (``Runtime.auth.authenticate``: credential lookup plus the
  resolved role grants) for an environment API key, a database API key and a session cookie,
  warm (the steady state: the per-process caches are filled) — comparable with the Go
  certctl's reported 5 µs session validation;
* a whole ``GET /api/v1/auth/check`` through the ASGI app with each credential;
* the OIDC callback (``/auth/oidc/callback`` against the in-process identity provider: code
  exchange over HTTP, ID-token validation, user upsert, session start) — comparable with the
  Go certctl's reported 1.5 ms callback p99.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ENC_KEY = "bench-encryption-key-0123456789-abcdefghijkl"
ADMIN = "bench-admin-key-0123456789"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _time(fn: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):  # warm caches and code paths
        await fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return _percentiles(samples)


async def _app(
    database_url: str, data_dir: Path, **overrides: Any
) -> tuple[Any, httpx.AsyncClient]:
    from certctl.app import create_app
    from certctl.settings import Settings, parse_named_api_keys

    settings = Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        config_encryption_key=ENC_KEY,
        api_keys_named=parse_named_api_keys(f"bench:{ADMIN}:admin"),
        **overrides,
    )
    app = create_app(settings, background=False)
    await app.state.runtime.start(background=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
        base_url="https://bench.local",
    )
    return app, client


def _connection(app: Any, headers: dict[str, str]) -> Any:
    from litestar.connection import ASGIConnection

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/auth/check",
        "raw_path": b"/api/v1/auth/check",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("bench.local", 443),
        "scheme": "https",
        "app": app,
        "state": {},
        "path_params": {},
    }
    return ASGIConnection(scope)  # type: ignore[arg-type]


async def api_keys(database_url: str, data_dir: Path, n: int) -> dict[str, tuple[float, float]]:
    """p50/p99 (µs) of the chain alone and of a whole request, per kind of API key."""
    app, client = await _app(database_url, data_dir)
    runtime = app.state.runtime
    try:
        r = await client.post(
            "/api/v1/auth/keys",
            json={"name": "bench-db", "roles": ["r-operator"]},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        r.raise_for_status()
        db_key = r.json()["key"]
        out: dict[str, tuple[float, float]] = {}
        for label, key in (("environment key", ADMIN), ("database key", db_key)):
            headers = {"Authorization": f"Bearer {key}"}
            connection = _connection(app, headers)
            out[f"chain, {label}"] = await _time(
                lambda c=connection: runtime.auth.authenticate(c), n
            )

            async def request(h: dict[str, str] = headers) -> None:
                resp = await client.get("/api/v1/auth/check", headers=h)
                resp.raise_for_status()

            out[f"GET /api/v1/auth/check, {label}"] = await _time(request, max(200, n // 20))
        return out
    finally:
        await client.aclose()
        await runtime.stop()


def run(name: str, url: Callable[[str], str], base: Path, *, only: set[str], requests: int) -> None:
    """Print the authentication figures for one backend."""
    if "auth" not in only:
        return
    for label, (p50, p99) in asyncio.run(api_keys(url("authkeys"), base / "a1", requests)).items():
        print(f"  authentication, {label}: p50 {p50:,.1f} µs, p99 {p99:,.1f} µs")
