"""The ``certctl`` command: plugins list, migrate, and serve refusing a broken TLS bundle."""

import importlib
import json
import logging
import os
import sqlite3
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl.cli import main
from certctl.db.migrate import head_revision

ENCRYPTION_KEY = "cli-test-encryption-key-0123456789abcdef"

PLUGIN_SOURCE = """
from certctl_sdk import ConnectorConfig, Issuer, hookimpl


class Cfg(ConnectorConfig, frozen=True, kw_only=True):
    pass


class CliFakeIssuer(Issuer):
    kind = "{kind}"
    display_name = "CLI fake"
    Config = Cfg

    async def issue(self, request):
        raise NotImplementedError


@hookimpl
def register_issuers():
    return [CliFakeIssuer]
"""


class FakeSite:
    """Fake installed distributions in a directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []
        self.suffix = uuid.uuid4().hex[:8]

    def install(self, dist: str, source: str, version: str = "1.0") -> str:
        module = f"{dist.replace('-', '_')}_{self.suffix}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[certctl]\n{dist} = {module}\n")
        self.modules.append(module)
        importlib.invalidate_caches()
        return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fake = FakeSite(root)
    yield fake
    for module in fake.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The developer's own CERTCTL_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("CERTCTL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def no_server(monkeypatch):
    """Make sure no test here ever binds a port: uvicorn.run records its call and returns."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


# --- plugins list --------------------------------------------------------------------------


def test_plugins_list_table(runner, site):
    site.install("certctl-issuer-clifake", PLUGIN_SOURCE.format(kind="clifake"), version="2.3")
    result = runner.invoke(
        main, ["plugins", "list"], env={"CERTCTL_LOAD_PLUGINS": "certctl-issuer-clifake"}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DISTRIBUTION", "VERSION", "CONNECTOR", "CLASS"]
    row = lines[1].split()
    assert row[:3] == ["certctl-issuer-clifake", "2.3", "issuer:clifake"]
    assert row[3].endswith(":CliFakeIssuer")


def test_plugins_list_json(runner, site):
    site.install("certctl-issuer-clijson", PLUGIN_SOURCE.format(kind="clijson"), version="0.4")
    site.install("certctl-issuer-clibroken", "raise ImportError('vendor SDK missing')\n")
    env = {"CERTCTL_LOAD_PLUGINS": "certctl-issuer-clijson,certctl-issuer-clibroken"}
    result = runner.invoke(main, ["plugins", "list", "--json"], env=env)
    report = json.loads(result.stdout)

    assert set(report) == {"plugins", "failures"}
    [plugin] = report["plugins"]
    assert plugin["distribution"] == "certctl-issuer-clijson"
    assert plugin["version"] == "0.4"
    assert plugin["name"] == "certctl-issuer-clijson"
    assert plugin["hooks"] == ["register_issuers"]
    [connector] = plugin["connectors"]
    assert connector["family"] == "issuer"
    assert connector["kind"] == "clijson"
    assert connector["class"].endswith(":CliFakeIssuer")
    [failure] = report["failures"]
    assert failure["distribution"] == "certctl-issuer-clibroken"
    assert set(failure) == {"name", "distribution", "version", "error"}
    assert "vendor SDK missing" in failure["error"]


def test_plugins_list_reports_failures_and_exits_non_zero(runner, site):
    site.install("certctl-issuer-cligood", PLUGIN_SOURCE.format(kind="cligood"))
    site.install("certctl-issuer-clibad", "raise ImportError('vendor SDK missing')\n", "9.9")
    env = {"CERTCTL_LOAD_PLUGINS": "certctl-issuer-cligood,certctl-issuer-clibad"}
    result = runner.invoke(main, ["plugins", "list"], env=env)
    assert result.exit_code == 1
    assert "certctl-issuer-cligood" in result.stdout
    assert "FAILED  certctl-issuer-clibad 9.9" in result.stderr
    assert "vendor SDK missing" in result.stderr


def test_plugins_list_with_nothing_loaded(runner):
    result = runner.invoke(main, ["plugins", "list", "--json"], env={"CERTCTL_LOAD_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"plugins": [], "failures": []}


# --- migrate -------------------------------------------------------------------------------


def _alembic_rows(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()


def test_migrate_then_migrate_again_is_a_no_op(runner, tmp_path, monkeypatch):
    db = tmp_path / "cli" / "certctl.db"
    url = f"sqlite:///{db}"
    from certctl.db import migrate as migrate_module

    upgrades: list[object] = []
    real_upgrade = migrate_module._upgrade
    monkeypatch.setattr(migrate_module, "_upgrade", lambda c: upgrades.append(c) or real_upgrade(c))

    result = runner.invoke(main, ["migrate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"database at revision {head_revision()}" in result.stdout
    assert len(upgrades) == 1
    assert _alembic_rows(db) == [(head_revision(),)]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO system_flags (name, value, created_at) VALUES ('sentinel', 'kept', ?)",
            (datetime.now(UTC).replace(tzinfo=None),),
        )
    result = runner.invoke(main, ["migrate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"database at revision {head_revision()}" in result.stdout
    assert len(upgrades) == 1, "a database at head is not upgraded again"
    assert _alembic_rows(db) == [(head_revision(),)]
    with sqlite3.connect(db) as conn:
        assert conn.execute(
            "SELECT value FROM system_flags WHERE name = 'sentinel'"
        ).fetchall() == [("kept",)]


def test_migrate_reads_the_database_url_from_the_environment(runner, tmp_path):
    db = tmp_path / "env.db"
    result = runner.invoke(main, ["migrate"], env={"CERTCTL_DATABASE_URL": f"sqlite:///{db}"})
    assert result.exit_code == 0, result.output
    assert _alembic_rows(db) == [(head_revision(),)]


def test_migrate_rejects_bad_settings(runner, tmp_path):
    result = runner.invoke(
        main,
        ["migrate", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
        env={"CERTCTL_DATABASE_MAX_CONNS": "many"},
    )
    assert result.exit_code != 0
    assert "CERTCTL_DATABASE_MAX_CONNS" in result.output


# --- serve ---------------------------------------------------------------------------------


def _write_cert(path: Path, *, expired: bool) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cli")])
    now = datetime.now(UTC)
    end = now - timedelta(days=1) if expired else now + timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=10))
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key_path


@pytest.mark.parametrize("problem", ["garbage", "expired", "missing"])
def test_serve_refuses_an_unusable_tls_bundle(runner, tmp_path, no_server, problem):
    cert_path = tmp_path / "server.crt"
    key_path = _write_cert(cert_path, expired=problem == "expired")
    if problem == "garbage":
        cert_path.write_text("this is not PEM")
    if problem == "missing":
        cert_path.unlink()
    env = {
        "CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CERTCTL_DATA_DIR": str(tmp_path / "data"),
        "CERTCTL_SERVER_TLS_CERT_PATH": str(cert_path),
        "CERTCTL_SERVER_TLS_KEY_PATH": str(key_path),
    }
    result = runner.invoke(main, ["serve", "--port", "18443"], env=env)
    assert result.exit_code == 1, result.output
    assert "refusing to start" in result.output
    expected = {
        "garbage": "cannot read server certificate",
        "expired": "expired",
        "missing": "server.crt",
    }
    assert expected[problem] in result.output
    assert no_server == []


def test_serve_refuses_half_a_tls_configuration(runner, tmp_path, no_server):
    env = {
        "CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CERTCTL_DATA_DIR": str(tmp_path / "data"),
        "CERTCTL_SERVER_TLS_CERT_PATH": str(tmp_path / "server.crt"),
    }
    result = runner.invoke(main, ["serve"], env=env)
    assert result.exit_code == 1
    assert "CERTCTL_SERVER_TLS_KEY_PATH" in result.output
    assert no_server == []


def test_serve_refuses_to_start_without_an_encryption_key(runner, tmp_path, no_server):
    result = runner.invoke(main, ["serve"], env={"CERTCTL_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1
    assert "CERTCTL_CONFIG_ENCRYPTION_KEY" in result.output
    assert no_server == []
    assert not (tmp_path / "data" / "tls").exists()


def test_cli_keeps_http_client_request_logs_out_of_the_server_log():
    """httpx logs full request URLs at INFO, and some notifier URLs are secrets."""

    from click.testing import CliRunner

    from certctl.cli import main

    root = logging.getLogger()
    saved = (root.level, logging.getLogger("httpx").level, logging.getLogger("httpcore").level)
    try:
        root.setLevel(logging.INFO)  # what the server's logging set-up does
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
        CliRunner().invoke(main, ["plugins", "list", "--json"])
        assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
        assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
    finally:
        root.setLevel(saved[0])
        logging.getLogger("httpx").setLevel(saved[1])
        logging.getLogger("httpcore").setLevel(saved[2])
