"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_notifier_webhook import WebhookNotifier, WebhookNotifierConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-notifier-webhook"]

    assert ep.value == "certctl_notifier_webhook.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-notifier-webhook"
    assert ep.load() is plugin


def test_hook_returns_the_notifier_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-notifier-webhook")
    pm.check_pending()

    (classes,) = pm.hook.register_notifiers()

    assert list(classes) == [WebhookNotifier]
    assert WebhookNotifier.kind == "webhook"
    assert WebhookNotifier.family == "notifier"
    assert WebhookNotifier.Config is WebhookNotifierConfig


def test_config_schema_renders_with_a_write_only_secret():
    schema = config_schema(WebhookNotifierConfig)
    props = schema["$defs"]["WebhookNotifierConfig"]["properties"]

    assert set(schema["$defs"]["WebhookNotifierConfig"]["required"]) == {"url", "secret"}
    assert props["secret"]["writeOnly"] is True
    assert all(p.get("description") for p in props.values())
