"""Fixtures shared by core and cross-package tests: databases, settings, running apps.

Every test that asks for ``database_url`` runs twice: on SQLite and on PostgreSQL. PostgreSQL
comes from ``CERTCTL_TEST_POSTGRES_URL`` if set, else a trust-auth server on 127.0.0.1:5432,
else a throwaway cluster started from Debian's binaries. Each test gets a fresh database cloned
from a template migrated once per run; the run's databases are dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_ENCRYPTION_KEY = "test-encryption-key-0123456789abcdef-0123456789"
ADMIN_KEY = "admin-test-key-0123456789"
VIEWER_KEY = "viewer-test-key-0123456789"


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _psql_ok(url: str) -> bool:
    try:
        import asyncpg
    except ImportError:
        return False

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except Exception:  # noqa: BLE001 - any failure means "not usable"
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _start_throwaway_cluster() -> tuple[str, Callable[[], None]] | None:
    bindir = Path("/usr/lib/postgresql")
    versions = sorted(bindir.glob("*/bin/initdb")) if bindir.exists() else []
    if not versions:
        return None
    initdb = versions[-1]
    pg_ctl = initdb.with_name("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="certctl-pg-"))
    shutil.chown(base, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run_as = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    subprocess.run(
        [*run_as, f"{initdb} -D {base}/data -A trust -U postgres"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *run_as,
            f"{pg_ctl} -D {base}/data -l {base}/pg.log -o '-c listen_addresses=127.0.0.1 -p {port} -k {base}' -w start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*run_as, f"{pg_ctl} -D {base}/data -m fast -w stop"], check=False, capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL URL with rights to create databases."""
    url = os.environ.get("CERTCTL_TEST_POSTGRES_URL")
    stop = None
    if not url:
        local = "postgresql://postgres@127.0.0.1:5432/postgres"
        if _port_open("127.0.0.1", 5432) and _psql_ok(local):
            url = local
        else:
            started = _start_throwaway_cluster()
            if started is None:
                reason = (
                    "PostgreSQL not available: set CERTCTL_TEST_POSTGRES_URL, run a trust server "
                    "on 127.0.0.1:5432, or install Debian's postgresql binaries"
                )
                if os.environ.get("CERTCTL_REQUIRE_POSTGRES"):
                    pytest.fail(reason)
                pytest.skip(reason)
            url, stop = started
    yield url
    if stop is not None:
        stop()


def _admin(url: str, *statements: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated once per run, cloned for each test."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from certctl.db.migrate import migrate
    from certctl.settings import normalise_database_url

    name = f"certctl_tpl_{secrets.token_hex(4)}"
    _admin(postgres_admin_url, f'CREATE DATABASE "{name}"')

    async def run() -> None:
        engine = create_async_engine(
            normalise_database_url(_with_database(postgres_admin_url, name))
        )
        await migrate(engine)
        await engine.dispose()

    asyncio.run(run())
    yield name
    _admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (or template-migrated) database per test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'certctl.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    template: str = request.getfixturevalue("postgres_template")
    name = f"certctl_t_{secrets.token_hex(6)}"
    _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield "postgresql+asyncpg://" + _with_database(admin_url, name).split("://", 1)[1]
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings_factory(database_url: str, tmp_path: Path) -> Callable[..., Any]:
    """Build Settings for a test; keyword arguments override fields."""
    from certctl.settings import Settings, parse_named_api_keys

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "database_url": database_url,
            "config_encryption_key": TEST_ENCRYPTION_KEY,
            "api_keys_named": parse_named_api_keys(f"admin:{ADMIN_KEY}:admin,viewer:{VIEWER_KEY}"),
            "worker_poll_interval": 0.05,
            "job_retry_base_seconds": 0.01,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def app_factory(settings_factory: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start apps for a test, on the test's own event loop; all are stopped at its end.

    The returned ``httpx.AsyncClient`` talks ASGI to the app and carries ``.app`` and
    ``.runtime`` so tests can drive the worker (``await client.runtime.worker.drain()``).
    """
    import httpx

    from certctl.app import create_app

    started: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(
        *, background: bool = False, host: Any = None, **overrides: Any
    ) -> httpx.AsyncClient:
        app = create_app(settings_factory(**overrides), host=host, background=background)
        runtime = app.state.runtime
        await runtime.start(background=background)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
            base_url="https://certctl.test.local",
        )
        client.app = app  # type: ignore[attr-defined]
        client.runtime = runtime  # type: ignore[attr-defined]
        started.append((runtime, client))
        return client

    yield make
    for runtime, client in reversed(started):
        await client.aclose()
        await runtime.stop()


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> Any:
    """A running app without background tasks; tests drive the worker with ``drain``."""
    return await app_factory()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Authorization header of the environment admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def viewer_headers() -> dict[str, str]:
    """Authorization header of the environment read-only key."""
    return {"Authorization": f"Bearer {VIEWER_KEY}"}


@pytest.fixture
def certctl_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` listening on the ``certctl`` logger at DEBUG.

    Litestar's logging set-up (run by every ``create_app``) replaces the root logger's
    handlers, which silently detaches plain ``caplog``; this handler sits on certctl's own
    logger instead, so records of apps started during the test are captured.
    """
    import logging

    logger = logging.getLogger("certctl")
    previous = logger.level
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(previous)


@pytest.fixture
def empty_database_url(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database nobody has migrated (the ``database_url`` of PostgreSQL is a migrated clone)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"certctl_empty_{secrets.token_hex(6)}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    yield "postgresql+asyncpg://" + _with_database(admin_url, name).split("://", 1)[1]
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
