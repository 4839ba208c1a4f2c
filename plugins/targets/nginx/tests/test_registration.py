"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_sdk import PROJECT_NAME, TargetCapability, config_schema, hookspecs
from certctl_target_nginx import NginxTarget, NginxTargetConfig, plugin


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-target-nginx"]

    assert ep.value == "certctl_target_nginx.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-target-nginx"
    assert ep.load() is plugin


def test_hook_returns_the_target_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-target-nginx")
    pm.check_pending()

    (classes,) = pm.hook.register_targets()

    assert list(classes) == [NginxTarget]
    assert NginxTarget.kind == "nginx"
    assert NginxTarget.family == "target"
    assert NginxTarget.Config is NginxTargetConfig
    assert TargetCapability.VERIFY_TLS in NginxTarget.capabilities
    assert TargetCapability.REMOVE not in NginxTarget.capabilities


def test_config_schema_renders_with_every_field_described():
    schema = config_schema(NginxTargetConfig)
    definition = schema["$defs"]["NginxTargetConfig"]

    assert set(definition["required"]) == {"cert_path", "key_path"}
    assert all(p.get("description") for p in definition["properties"].values())
