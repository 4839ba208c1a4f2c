"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_notifier_opsgenie import OpsgenieNotifier, OpsgenieNotifierConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-notifier-opsgenie"]

    assert ep.value == "certctl_notifier_opsgenie.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-notifier-opsgenie"
    assert ep.load() is plugin


def test_hook_returns_the_notifier_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-notifier-opsgenie")
    pm.check_pending()

    (classes,) = pm.hook.register_notifiers()

    assert list(classes) == [OpsgenieNotifier]
    assert OpsgenieNotifier.kind == "opsgenie"
    assert OpsgenieNotifier.family == "notifier"
    assert OpsgenieNotifier.Config is OpsgenieNotifierConfig


def test_config_schema_renders_with_a_write_only_secret():
    schema = config_schema(OpsgenieNotifierConfig)
    definition = schema["$defs"]["OpsgenieNotifierConfig"]
    props = definition["properties"]

    assert set(definition["required"]) == {"api_key"}
    assert props["api_key"]["writeOnly"] is True
    assert all(p.get("description") for p in props.values())
