"""The ``certctl`` command: serve, worker, migrate, plugins, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import click
import msgspec

from certctl import __version__
from certctl.settings import Settings, SettingsError

__all__ = ["main"]


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="certctl")
def main() -> None:
    """certctl: issue, deploy, renew and revoke certificates from any CA to any server."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration plugin
    # httpx logs every request URL at INFO, and webhook URLs (Slack, Teams) are secrets.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Bind address (CERTCTL_SERVER_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (CERTCTL_SERVER_PORT, default 8443).")
@click.option("--data-dir", help="Data directory (CERTCTL_DATA_DIR, default ./data).")
@click.option(
    "--database-url", help="Database URL (CERTCTL_DATABASE_URL, default SQLite in the data dir)."
)
@click.option(
    "--demo", is_flag=True, help="Seed demo data (CERTCTL_DEMO_SEED=true) and print an admin key."
)
def serve(
    host: str | None, port: int | None, data_dir: str | None, database_url: str | None, demo: bool
) -> None:
    """Run the HTTPS server, its worker and renewal scan."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from certctl.app import create_app
    from certctl.lib.peer_tls import tls_aware_protocol
    from certctl.listener_tls import ListenerTLS
    from certctl.tls import TLSBundleError, client_trust_bundles, ensure_server_certificate

    settings = _settings(
        server_host=host,
        server_port=port,
        data_dir=data_dir,
        database_url=database_url,
        demo=True if demo else None,
    )
    try:
        cert_path, key_path = ensure_server_certificate(settings)
    except TLSBundleError as exc:
        raise click.ClickException(f"refusing to start: {exc}") from None
    app = create_app(settings)
    if settings.demo:
        from certctl.demo import DemoSeed, seed_demo

        runtime = app.state.runtime

        async def seed() -> DemoSeed:
            await runtime.start(background=False)
            try:
                return await seed_demo(runtime)
            finally:
                await runtime.stop()

        seeded = asyncio.run(seed())
        key = seeded.api_key
        app = create_app(settings)
        click.echo("")
        click.echo(f"  certctl demo is starting at {settings.effective_public_url}")
        click.echo(f"  Trust this server certificate:  {cert_path.resolve()}")
        click.echo(f"  Admin API key (shown once):      {key}")
        url = f"{settings.effective_public_url}/api/v1/certificates"
        click.echo(
            f"  Try: curl --cacert {cert_path.resolve()} -H 'Authorization: Bearer {key}' {url}"
        )
        if seeded.acme_profile_id:
            acme = f"{settings.effective_public_url}/acme/profile/{seeded.acme_profile_id}"
            click.echo(f"  ACME directory (http-01, *.demo.internal): {acme}/directory")
        click.echo("")
    else:
        click.echo(
            f"certctl listening on {settings.effective_public_url} (certificate {cert_path})"
        )
    try:
        listener = ListenerTLS(cert_path, key_path, lambda: client_trust_bundles(settings))
    except TLSBundleError as exc:
        raise click.ClickException(f"refusing to start: {exc}") from None
    app.state.listener_tls = listener
    uvicorn.run(
        app,
        host=settings.server_host,
        port=settings.server_port,
        ssl_context_factory=lambda _config, _default: listener.context,
        http=tls_aware_protocol(AutoHTTPProtocol),
        log_level=settings.log_level,
        proxy_headers=False,
    )


@main.command()
@click.option("--data-dir", help="Data directory (CERTCTL_DATA_DIR, default ./data).")
@click.option("--database-url", help="Database URL (CERTCTL_DATABASE_URL).")
def worker(data_dir: str | None, database_url: str | None) -> None:
    """Run only the job worker and renewal scan, without HTTP (scale-out on PostgreSQL).

    Any number of worker processes and ``serve`` replicas can share one PostgreSQL database:
    jobs are claimed with SKIP LOCKED and completed only by the lease holder.
    """
    import signal

    from certctl.runtime import Runtime

    settings = _settings(data_dir=data_dir, database_url=database_url)
    if not settings.worker_enabled:
        raise click.ClickException("CERTCTL_WORKER_ENABLED=false: nothing to run")

    async def run() -> None:
        runtime = Runtime(settings, role="worker")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await runtime.start(background=True)
        replica = runtime.scheduler.replica_id if runtime.scheduler else runtime.worker.worker_id
        click.echo(f"certctl worker {replica} running")
        try:
            await stop.wait()
        finally:
            await runtime.stop()

    asyncio.run(run())


@main.command()
@click.option("--database-url", help="Database URL (CERTCTL_DATABASE_URL).")
def migrate(database_url: str | None) -> None:
    """Apply database migrations and exit (safe to run from several replicas at once)."""
    from certctl.db.engine import create_engine
    from certctl.db.migrate import migrate as run_migrations

    settings = _settings(database_url=database_url, demo=True)

    async def run() -> str:
        engine = create_engine(settings.effective_database_url)
        try:
            return await run_migrations(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {asyncio.run(run())}")


@main.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_list(as_json: bool) -> None:
    """Loaded plugins, the connectors each provides, and load failures."""
    from certctl.domain.system.controller import plugins_report_for_host
    from certctl.plugins.manager import load_plugins

    settings = _settings(demo=True)
    host = load_plugins(load=settings.load_plugins, disable=settings.disable_plugins)
    report = plugins_report_for_host(host)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
        sys.exit(1 if report.failures else 0)
    rows = [
        (p.distribution, p.version, f"{c['family']}:{c['kind']}", c["class"])
        for p in report.plugins
        for c in p.connectors
    ]
    widths = [
        max([len(h)] + [len(r[i]) for r in rows])
        for i, h in enumerate(("DISTRIBUTION", "VERSION", "CONNECTOR", "CLASS"))
    ]
    click.echo(
        "  ".join(
            h.ljust(w)
            for h, w in zip(("DISTRIBUTION", "VERSION", "CONNECTOR", "CLASS"), widths, strict=True)
        )
    )
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    for failure in report.failures:
        click.echo(
            f"FAILED  {failure.distribution} {failure.version} ({failure.name}): {failure.error}",
            err=True,
        )
    if report.failures:
        sys.exit(1)


@main.group()
def audit() -> None:
    """Check the audit trail's hash chain."""


@audit.command("verify")
@click.option("--database-url", help="Database URL (CERTCTL_DATABASE_URL).")
@click.option(
    "--file",
    "export_file",
    type=click.File("rb"),
    help="Verify an unfiltered NDJSON export (GET /api/v1/audit/export) instead of the database.",
)
@click.option(
    "--anchor",
    metavar="SEQ:HASH",
    help="A link written down earlier (a report's head_seq:head_hash) that must still be there.",
)
def audit_verify(database_url: str | None, export_file: Any, anchor: str | None) -> None:
    """Walk the chain and print the report as JSON; exit 1 when a link is broken."""
    from certctl.domain.audit.verify import parse_anchor, verify_database, verify_export_lines

    try:
        expected = parse_anchor(anchor) if anchor is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--anchor") from None
    if export_file is not None:
        report = verify_export_lines(export_file, expected)
    else:
        from sqlalchemy.exc import DBAPIError

        from certctl.db.engine import create_engine

        settings = _settings(database_url=database_url, demo=True)

        async def run() -> Any:
            engine = create_engine(settings.effective_database_url)
            try:
                return await verify_database(engine, anchor=expected)
            finally:
                await engine.dispose()

        try:
            report = asyncio.run(run())
        except (DBAPIError, OSError) as exc:
            raise click.ClickException(f"cannot read the audit trail: {exc}") from None
    click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
    sys.exit(0 if report.ok else 1)
