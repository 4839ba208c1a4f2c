"""The plugin host: loads plugins through pluggy and registers the connectors they provide.

Connectors themselves live in separate distributions (``plugins/<family>/<name>``); this package
only finds, checks and lists them. Build a host with :func:`load_plugins`.
"""

from certctl.plugins.manager import BUILTIN_DISTRIBUTION, PluginHost, load_plugins, notify_event
from certctl.plugins.registry import (
    FAMILY_BASES,
    FAMILY_HOOKS,
    KIND_PATTERN,
    ConnectorRegistry,
    ConnectorSpec,
    PluginInfo,
    PluginLoadFailure,
    Provenance,
    UnknownConnectorKind,
)

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "FAMILY_BASES",
    "FAMILY_HOOKS",
    "KIND_PATTERN",
    "ConnectorRegistry",
    "ConnectorSpec",
    "PluginHost",
    "PluginInfo",
    "PluginLoadFailure",
    "Provenance",
    "UnknownConnectorKind",
    "load_plugins",
    "notify_event",
]
