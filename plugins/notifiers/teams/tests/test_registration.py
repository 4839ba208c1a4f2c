"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_notifier_teams import TeamsNotifier, TeamsNotifierConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-notifier-teams"]

    assert ep.value == "certctl_notifier_teams.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-notifier-teams"
    assert ep.load() is plugin


def test_hook_returns_the_notifier_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-notifier-teams")
    pm.check_pending()

    (classes,) = pm.hook.register_notifiers()

    assert list(classes) == [TeamsNotifier]
    assert TeamsNotifier.kind == "teams"
    assert TeamsNotifier.family == "notifier"
    assert TeamsNotifier.Config is TeamsNotifierConfig


def test_config_schema_renders_with_a_write_only_secret():
    schema = config_schema(TeamsNotifierConfig)
    definition = schema["$defs"]["TeamsNotifierConfig"]
    props = definition["properties"]

    assert set(definition["required"]) == {"webhook_url"}
    assert props["webhook_url"]["writeOnly"] is True
    assert all(p.get("description") for p in props.values())
