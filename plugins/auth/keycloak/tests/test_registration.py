"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from certctl_auth_keycloak import KeycloakProvider, KeycloakProviderConfig, plugin
from certctl_sdk import PROJECT_NAME, config_schema, hookspecs
from certctl_sdk.auth import SsoProvider


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-auth-keycloak"]

    assert ep.value == "certctl_auth_keycloak.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-auth-keycloak"
    assert ep.load() is plugin


def test_hook_returns_the_provider_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-auth-keycloak")
    pm.check_pending()

    (classes,) = pm.hook.register_auth_providers()

    assert list(classes) == [KeycloakProvider]
    assert (KeycloakProvider.family, KeycloakProvider.kind) == ("auth", "keycloak")
    assert KeycloakProvider.Config is KeycloakProviderConfig


def test_validation_is_the_sdks_not_a_copy():
    for rule in (
        "validate_id_token",
        "verify_logout_token",
        "check_callback_issuer",
        "_verify_jws",
    ):
        assert getattr(KeycloakProvider, rule) is getattr(SsoProvider, rule), rule


def test_config_schema_renders_with_a_write_only_secret():
    schema = config_schema(KeycloakProviderConfig)
    definition = schema["$defs"]["KeycloakProviderConfig"]

    assert set(definition["required"]) == {
        "server_url",
        "realm",
        "client_id",
        "client_secret",
        "redirect_uri",
    }
    assert definition["properties"]["client_secret"]["writeOnly"] is True
    assert all(p.get("description") for p in definition["properties"].values())
