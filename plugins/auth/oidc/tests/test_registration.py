"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_auth_oidc import OidcProvider, OidcProviderConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs
from certctl_sdk.auth import SsoProvider


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-auth-oidc"]

    assert ep.value == "certctl_auth_oidc.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-auth-oidc"
    assert ep.load() is plugin


def test_hook_returns_the_provider_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-auth-oidc")
    pm.check_pending()

    (classes,) = pm.hook.register_auth_providers()

    assert list(classes) == [OidcProvider]
    assert issubclass(OidcProvider, SsoProvider)
    assert (OidcProvider.family, OidcProvider.kind) == ("auth", "oidc")
    assert OidcProvider.Config is OidcProviderConfig


def test_config_schema_renders_with_a_write_only_secret():
    schema = config_schema(OidcProviderConfig)
    definition = schema["$defs"]["OidcProviderConfig"]

    assert set(definition["required"]) == {"issuer", "client_id", "client_secret", "redirect_uri"}
    assert definition["properties"]["client_secret"]["writeOnly"] is True
    assert all(p.get("description") for p in definition["properties"].values())
