"""The distribution is installed, registered under its own name, and its schema renders."""

from __future__ import annotations

from importlib.metadata import entry_points

import msgspec
import pluggy

from certctl_issuer_local import LocalIssuer, LocalIssuerConfig, plugin
from certctl_sdk import PROJECT_NAME, IssuerCapability, config_schema, hookspecs


def test_entry_point_is_named_after_the_distribution():
    (ep,) = [ep for ep in entry_points(group="certctl") if ep.name == "certctl-issuer-local"]

    assert ep.value == "certctl_issuer_local.plugin"
    assert ep.dist is not None
    assert ep.dist.name == "certctl-issuer-local"
    assert ep.load() is plugin


def test_hook_returns_the_issuer_class():
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="certctl-issuer-local")
    pm.check_pending()

    (classes,) = pm.hook.register_issuers()

    assert list(classes) == [LocalIssuer]
    assert LocalIssuer.kind == "local"
    assert LocalIssuer.family == "issuer"
    assert LocalIssuer.Config is LocalIssuerConfig
    assert LocalIssuer.capabilities == {
        IssuerCapability.REVOKE,
        IssuerCapability.CRL_SIGNING,
        IssuerCapability.OCSP_SIGNING,
        IssuerCapability.CA_CERTIFICATES,
        IssuerCapability.SUBORDINATE_CA,
    }


def test_config_schema_renders_with_a_write_only_key():
    schema = config_schema(LocalIssuerConfig)
    msgspec.json.encode(schema)
    definition = schema["$defs"]["LocalIssuerConfig"]
    props = definition["properties"]

    assert definition.get("required", []) == []  # an empty object is a working self-signed CA
    assert all(p.get("description") for p in props.values())
    key = props["ca_private_key"]
    assert {"type": "string", "format": "password", "writeOnly": True} in key["anyOf"]
    assert set(props["mode"]["enum"]) == {"self-signed", "sub-ca"}
