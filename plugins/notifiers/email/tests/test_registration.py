"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_notifier_email import EmailNotifier, EmailNotifierConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-notifier-email"]

    assert ep.value == "certctl_notifier_email.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-notifier-email"
    assert ep.load() is plugin


def test_hook_returns_the_notifier_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-notifier-email")
    pm.check_pending()

    (classes,) = pm.hook.register_notifiers()

    assert list(classes) == [EmailNotifier]
    assert EmailNotifier.kind == "email"
    assert EmailNotifier.family == "notifier"
    assert EmailNotifier.Config is EmailNotifierConfig


def test_config_schema_renders_with_a_write_only_password():
    schema = config_schema(EmailNotifierConfig)
    definition = schema["$defs"]["EmailNotifierConfig"]
    props = definition["properties"]

    assert set(definition["required"]) == {"host", "from_address", "to"}
    (secret,) = [s for s in props["password"]["anyOf"] if s.get("type") == "string"]
    assert secret["writeOnly"] is True
    assert all(p.get("description") for p in props.values())
