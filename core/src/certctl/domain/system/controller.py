"""Probes, version and plugin introspection."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get
from sqlalchemy import text

from certctl import __version__
from certctl.db.migrate import SCHEMA_HEAD, schema_is_current
from certctl.lib.deps import RuntimeDep
from certctl.plugins.manager import PluginHost

__all__ = ["PluginsOut", "SystemController", "plugins_report_for_host"]


class VersionOut(msgspec.Struct, kw_only=True):
    """Server version."""

    version: str
    api: str = "v1"


class PluginOut(msgspec.Struct, kw_only=True):
    """A loaded plugin and the connectors it provides."""

    name: str
    distribution: str
    version: str
    hooks: list[str]
    connectors: list[dict[str, str]]


class PluginFailureOut(msgspec.Struct, kw_only=True):
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str
    version: str
    error: str


class PluginsOut(msgspec.Struct, kw_only=True):
    """Everything the plugin host knows."""

    plugins: list[PluginOut]
    failures: list[PluginFailureOut]


def plugins_report_for_host(host: PluginHost) -> PluginsOut:
    """The plugin host's state, as served by the API and printed by the CLI."""
    registry = host.registry
    return PluginsOut(
        plugins=[
            PluginOut(
                name=p.name,
                distribution=p.distribution,
                version=p.version,
                hooks=list(p.hooks),
                connectors=[{"family": f, "kind": k, "class": c} for f, k, c in p.connectors],
            )
            for p in registry.plugins
        ],
        failures=[
            PluginFailureOut(
                name=f.name, distribution=f.distribution, version=f.version, error=f.error
            )
            for f in registry.failures
        ],
    )


class SystemController(Controller):
    """Liveness, readiness, version and plugins."""

    tags = ["System"]

    @get("/health", opt={"public": True}, sync_to_thread=False)
    def health(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @get("/ready", opt={"public": True})
    async def ready(self, runtime: RuntimeDep) -> Response[dict[str, Any]]:
        """The database answers and its schema is current."""
        try:
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            current = await schema_is_current(runtime.engine)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            return Response(
                {"status": "unavailable", "database": type(exc).__name__}, status_code=503
            )
        if not current:
            return Response(
                {"status": "unavailable", "database": "schema not migrated"}, status_code=503
            )
        return Response({"status": "ready", "database": "ok", "schema": SCHEMA_HEAD})

    @get("/api/v1/version", opt={"public": True}, sync_to_thread=False)
    def version(self) -> VersionOut:
        """The server version."""
        return VersionOut(version=__version__)

    @get("/api/v1/plugins", opt={"permission": "plugin.read"}, sync_to_thread=False)
    def plugins(self, runtime: RuntimeDep) -> PluginsOut:
        """Loaded plugins, the connectors each provides, and plugins that failed to load."""
        return plugins_report_for_host(runtime.host)
