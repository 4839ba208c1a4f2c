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
        rate_limit_enabled=False,  # every request comes from one address
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


CLIENT_ID = "certctl"
SECRET = "bench-client-secret-0123456789"  # noqa: S105 - the in-process IdP's test client
CALLBACK = "https://bench.local/auth/oidc/callback"


async def sso(
    database_url: str, data_dir: Path, n: int, logins: int
) -> dict[str, tuple[float, float]]:
    """p50/p99 (µs) of session-cookie authentication and of the OIDC callback."""
    from certctl_sdk.auth import SsoProvider
    from certctl_sdk.testing.idp import InProcessIdp

    # Time the code exchange (an HTTP round trip to the IdP, which runs in this process and
    # signs the tokens in Python) and the ID-token validation inside each callback, so the
    # figure can be split into the IdP's share and certctl's own.
    spent: dict[str, float] = {"exchange": 0.0, "validate": 0.0}
    exchange, validate = SsoProvider.exchange_code, SsoProvider.validate_id_token

    async def timed_exchange(self: Any, **kw: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return await exchange(self, **kw)
        finally:
            spent["exchange"] = (time.perf_counter_ns() - start) / 1000

    async def timed_validate(self: Any, *args: Any, **kw: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return await validate(self, *args, **kw)
        finally:
            spent["validate"] = (time.perf_counter_ns() - start) / 1000

    SsoProvider.exchange_code = timed_exchange  # type: ignore[method-assign]
    SsoProvider.validate_id_token = timed_validate  # type: ignore[method-assign]

    app, client = await _app(database_url, data_dir)
    runtime = app.state.runtime
    admin = {"Authorization": f"Bearer {ADMIN}"}
    out: dict[str, tuple[float, float]] = {}
    try:
        with InProcessIdp() as idp:
            idp.register_client(CLIENT_ID, SECRET, [CALLBACK])
            r = await client.post(
                "/api/v1/auth/oidc/providers",
                json={
                    "name": "bench",
                    "type": "oidc",
                    "config": {
                        "issuer": idp.issuer,
                        "client_id": CLIENT_ID,
                        "client_secret": SECRET,
                        "redirect_uri": CALLBACK,
                    },
                },
                headers=admin,
            )
            r.raise_for_status()
            provider = r.json()["id"]
            r = await client.post(
                "/api/v1/auth/oidc/group-mappings",
                json={
                    "provider_id": provider,
                    "group": "certctl-operators",
                    "role_id": "r-operator",
                },
                headers=admin,
            )
            r.raise_for_status()
            browser = httpx.AsyncClient(transport=client._transport, base_url="https://bench.local")
            callback_us: list[float] = []
            exchange_us: list[float] = []
            validate_us: list[float] = []
            for i in range(logins + 20):
                r = await browser.get("/auth/oidc/login", params={"provider": provider})
                assert r.status_code == 302, r.text
                back = await idp.authorize(r.headers["location"])
                start = time.perf_counter_ns()
                r = await browser.get(back)
                elapsed = (time.perf_counter_ns() - start) / 1000
                assert r.status_code == 303, r.text
                if i >= 20:  # the first logins warm the JWKS and discovery caches
                    callback_us.append(elapsed)
                    exchange_us.append(spent["exchange"])
                    validate_us.append(spent["validate"])
            out["OIDC callback, whole (IdP code exchange included)"] = _percentiles(callback_us)
            out["OIDC callback, code exchange round trip to the IdP"] = _percentiles(exchange_us)
            out["OIDC callback, ID-token validation"] = _percentiles(validate_us)
            out["OIDC callback, certctl's own share (whole minus the IdP round trip)"] = (
                _percentiles([c - e for c, e in zip(callback_us, exchange_us, strict=True)])
            )
            cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
            await browser.aclose()
            headers = {"Cookie": cookie}
            connection = _connection(app, headers)
            actor = await runtime.auth.authenticate(connection)
            assert actor.type == "User", actor
            assert actor.session_id, actor
            out["chain, session cookie"] = await _time(
                lambda: runtime.auth.authenticate(connection), n
            )

            async def request() -> None:
                resp = await client.get("/api/v1/auth/check", headers=headers)
                resp.raise_for_status()

            out["GET /api/v1/auth/check, session cookie"] = await _time(request, max(200, n // 20))
        return out
    finally:
        SsoProvider.exchange_code = exchange  # type: ignore[method-assign]
        SsoProvider.validate_id_token = validate  # type: ignore[method-assign]
        await client.aclose()
        await runtime.stop()


def run(name: str, url: Callable[[str], str], base: Path, *, only: set[str], requests: int) -> None:
    """Print the authentication figures for one backend."""
    if "auth" not in only:
        return
    figures = asyncio.run(api_keys(url("authkeys"), base / "a1", requests))
    figures.update(asyncio.run(sso(url("authsso"), base / "a2", requests, logins=300)))
    for label, (p50, p99) in figures.items():
        if p99 >= 1000:
            print(f"  authentication, {label}: p50 {p50 / 1000:,.2f} ms, p99 {p99 / 1000:,.2f} ms")
        else:
            print(f"  authentication, {label}: p50 {p50:,.1f} µs, p99 {p99:,.1f} µs")
