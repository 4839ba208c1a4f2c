"""ConnectorRegistry.collect: per-implementation calls, class validation, duplicate kinds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import msgspec
import pluggy
import pytest

from certctl.plugins.registry import (
    ConnectorRegistry,
    ConnectorSpec,
    PluginInfo,
    PluginLoadFailure,
    Provenance,
    UnknownConnectorKind,
)
from certctl_sdk import (
    ConnectorConfig,
    IssuedCertificate,
    Issuer,
    IssueRequest,
    Notification,
    Notifier,
    Target,
    hookimpl,
    hookspecs,
)


class EmptyConfig(ConnectorConfig, frozen=True, kw_only=True):
    pass


class NeedsUrlConfig(ConnectorConfig, frozen=True, kw_only=True):
    url: str


class Unrenderable:
    """A field type msgspec cannot describe in JSON Schema."""


class UnrenderableConfig(ConnectorConfig, frozen=True, kw_only=True):
    thing: Unrenderable


def make_issuer(kind: object = "alpha", **attrs: Any) -> type[Issuer[Any]]:
    """A concrete issuer class; ``attrs`` override (or, with ``...``, delete) class attributes."""
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "display_name": f"Issuer {kind}",
        "Config": EmptyConfig,
    }
    namespace.update(kind=kind, **attrs)
    for name in [k for k, v in namespace.items() if v is ...]:
        del namespace[name]

    async def issue(self: Issuer[Any], request: IssueRequest) -> IssuedCertificate:
        raise AssertionError("not called in these tests")

    namespace["issue"] = issue
    return type(f"Issuer_{kind if kind is not ... else 'nokind'}", (Issuer,), namespace)


class PlainTarget(Target[EmptyConfig]):
    kind = "alpha"  # same kind as an issuer: kinds are unique per family only
    display_name = "Plain target"
    Config = EmptyConfig

    async def deploy(self, request: Any) -> Any:
        raise AssertionError("not called")


class PlainNotifier(Notifier[EmptyConfig]):
    kind = "mail"
    display_name = "Mail"
    Config = EmptyConfig

    async def send(self, notification: Notification) -> None:
        raise AssertionError("not called")


class IssuerPlugin:
    """A plugin object whose register_issuers returns the given classes."""

    def __init__(self, *classes: object) -> None:
        self.classes = classes

    @hookimpl
    def register_issuers(self) -> list[object]:
        return list(self.classes)


class Harness:
    """A fresh plugin manager per test, plus the provenance the loader would keep."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("certctl")
        self.pm.add_hookspecs(hookspecs)
        self.provenance: dict[str, tuple[str, str]] = {}

    def add(self, name: str, plugin: object, dist: str | None = None, version: str = "1.0") -> None:
        self.pm.register(plugin, name=name)
        self.provenance[name] = Provenance(dist or name, version)

    def collect(self, **kwargs: Any) -> ConnectorRegistry:
        registry = ConnectorRegistry()
        registry.collect(self.pm, self.provenance, **kwargs)
        return registry


@pytest.fixture
def harness() -> Harness:
    return Harness()


def only_failure(registry: ConnectorRegistry) -> PluginLoadFailure:
    assert len(registry.failures) == 1, registry.failures
    return registry.failures[0]


def test_valid_connectors_register_with_provenance(harness: Harness) -> None:
    beta = make_issuer("beta")
    alpha = make_issuer("alpha")

    class Both:
        @hookimpl
        def register_targets(self) -> list[type[Target[Any]]]:
            return [PlainTarget]

        @hookimpl
        def register_notifiers(self) -> Iterator[type[Notifier[Any]]]:
            yield PlainNotifier  # generators are iterables too

    harness.add("certctl-issuer-ab", IssuerPlugin(beta, alpha), version="2.3")
    harness.add("certctl-misc", Both())
    registry = harness.collect()

    assert registry.failures == []
    assert registry.get("issuer", "alpha") == ConnectorSpec(
        "issuer", "alpha", alpha, "certctl-issuer-ab", "2.3"
    )
    assert [s.kind for s in registry.kinds("issuer")] == ["alpha", "beta"]
    assert registry.get("target", "alpha").cls is PlainTarget
    assert registry.get("notifier", "mail").distribution == "certctl-misc"
    assert registry.kinds("scanner") == []
    assert registry.plugins == [
        PluginInfo(
            name="certctl-issuer-ab",
            distribution="certctl-issuer-ab",
            version="2.3",
            hooks=("register_issuers",),
            connectors=(
                ("issuer", "alpha", f"{__name__}:Issuer_alpha"),
                ("issuer", "beta", f"{__name__}:Issuer_beta"),
            ),
        ),
        PluginInfo(
            name="certctl-misc",
            distribution="certctl-misc",
            version="1.0",
            hooks=("register_notifiers", "register_targets"),
            connectors=(
                ("notifier", "mail", f"{__name__}:PlainNotifier"),
                ("target", "alpha", f"{__name__}:PlainTarget"),
            ),
        ),
    ]


def test_plugin_info_encodes_to_json(harness: Harness) -> None:
    harness.add("p", IssuerPlugin(make_issuer("alpha")))
    info = harness.collect().plugins[0]
    assert msgspec.json.decode(msgspec.json.encode(info))["connectors"] == [
        ["issuer", "alpha", f"{__name__}:Issuer_alpha"]
    ]


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        pytest.param(object(), "which is not a class", id="instance"),
        pytest.param(PlainTarget, "is not a subclass of certctl_sdk.Issuer", id="wrong-family"),
        pytest.param(dict, "is not a subclass of certctl_sdk.Issuer", id="not-a-connector"),
        pytest.param(make_issuer("Bad_Kind"), "'Bad_Kind' is not a lowercase slug", id="kind"),
        pytest.param(make_issuer("1st"), "'1st' is not a lowercase slug", id="kind-digit"),
        pytest.param(make_issuer("a b"), "'a b' is not a lowercase slug", id="kind-space"),
        pytest.param(make_issuer("ok\n"), "is not a lowercase slug", id="kind-newline"),
        pytest.param(make_issuer(kind=...), "kind None is not a lowercase slug", id="no-kind"),
        pytest.param(make_issuer(7), "kind 7 is not a lowercase slug", id="kind-int"),
        pytest.param(
            make_issuer("nd", display_name=...), "display_name must be a non-empty", id="no-name"
        ),
        pytest.param(
            make_issuer("ed", display_name="  "), "display_name must be a non-empty", id="blank"
        ),
        pytest.param(
            make_issuer("nc", Config=...), "Config must be a subclass of certctl_sdk", id="no-cfg"
        ),
        pytest.param(
            make_issuer("dc", Config=dict), "Config must be a subclass of certctl_sdk", id="dict"
        ),
        pytest.param(
            make_issuer("sc", Config=msgspec.Struct), "Config must be a subclass", id="struct"
        ),
        pytest.param(
            make_issuer("uc", Config=UnrenderableConfig), "cannot be rendered", id="schema"
        ),
        pytest.param(make_issuer("fam", family="target"), "declares family 'target'", id="family"),
        pytest.param(
            type(
                "AbstractIssuer",
                (Issuer,),
                {
                    "__module__": __name__,
                    "kind": "abs",
                    "display_name": "Abstract",
                    "Config": EmptyConfig,
                },
            ),
            "is abstract; it must implement issue",
            id="abstract",
        ),
    ],
)
def test_invalid_class_is_a_failure_and_valid_ones_still_register(
    harness: Harness, returned: object, reason: str
) -> None:
    good = make_issuer("good")
    harness.add("certctl-issuer-mixed", IssuerPlugin(returned, good), version="0.9")
    harness.add("certctl-issuer-other", IssuerPlugin(make_issuer("other")))
    registry = harness.collect()

    failure = only_failure(registry)
    assert (failure.name, failure.distribution, failure.version) == (
        "certctl-issuer-mixed",
        "certctl-issuer-mixed",
        "0.9",
    )
    assert reason in failure.error
    assert [s.kind for s in registry.kinds("issuer")] == ["good", "other"]


@pytest.mark.parametrize(
    ("impl_result", "expected"),
    [
        pytest.param(None, "register_issuers() returned None", id="none"),
        pytest.param("alpha", "returned 'alpha'", id="string"),
        pytest.param(Issuer, "returned <class", id="bare-class"),
    ],
)
def test_non_iterable_result_is_a_failure(
    harness: Harness, impl_result: object, expected: str
) -> None:
    class Plugin:
        @hookimpl
        def register_issuers(self) -> object:
            return impl_result

    harness.add("bad", Plugin())
    failure = only_failure(harness.collect())
    assert expected in failure.error
    assert "return an iterable of classes" in failure.error


def test_raising_impl_is_recorded_and_others_continue(harness: Harness) -> None:
    class Boom:
        @hookimpl
        def register_issuers(self) -> list[type[Issuer[Any]]]:
            raise RuntimeError("vendor SDK missing")

    def half_then_boom() -> Iterator[type[Issuer[Any]]]:
        yield make_issuer("half")
        raise KeyError("late")

    class LateBoom:
        @hookimpl
        def register_issuers(self) -> Iterator[type[Issuer[Any]]]:
            return half_then_boom()

    harness.add("boom", Boom(), dist="certctl-issuer-boom", version="3.1")
    harness.add("late", LateBoom())
    harness.add("fine", IssuerPlugin(make_issuer("fine")))
    registry = harness.collect()

    assert sorted((f.distribution, f.version, f.error) for f in registry.failures) == [
        (
            "certctl-issuer-boom",
            "3.1",
            "register_issuers() raised RuntimeError: vendor SDK missing",
        ),
        ("late", "1.0", "register_issuers() raised KeyError: 'late'"),
    ]
    # A generator that fails half-way contributes nothing: partial registration would hide bugs.
    assert [s.kind for s in registry.kinds("issuer")] == ["fine"]


def test_hook_wrapper_for_registration_is_refused(harness: Harness) -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def register_issuers(self) -> Iterator[None]:
            return (yield)

    harness.add("wrapper", Wrapper())
    harness.add("fine", IssuerPlugin(make_issuer("fine")))
    registry = harness.collect()
    assert "cannot be a hook wrapper" in only_failure(registry).error
    assert [s.kind for s in registry.kinds("issuer")] == ["fine"]


def test_duplicate_kind_registers_neither_and_names_both(harness: Harness) -> None:
    first, second = make_issuer("acme"), make_issuer("acme")
    harness.add("certctl-issuer-acme", IssuerPlugin(first), version="1.2")
    harness.add("certctl-issuer-acme-fork", IssuerPlugin(second, make_issuer("keep")))

    class TargetPlugin:
        @hookimpl
        def register_targets(self) -> list[type[Target[Any]]]:
            return [PlainTarget]

    harness.add("certctl-target-x", TargetPlugin())
    registry = harness.collect()

    assert sorted(f.distribution for f in registry.failures) == [
        "certctl-issuer-acme",
        "certctl-issuer-acme-fork",
    ]
    for failure in registry.failures:
        assert "certctl-issuer-acme (" in failure.error
        assert "certctl-issuer-acme-fork (" in failure.error
        assert "CERTCTL_DISABLE_PLUGINS" in failure.error

    with pytest.raises(UnknownConnectorKind) as excinfo:
        registry.get("issuer", "acme")
    message = str(excinfo.value)
    assert "certctl-issuer-acme (" in message
    assert "certctl-issuer-acme-fork (" in message
    assert "CERTCTL_DISABLE_PLUGINS" in message
    assert (excinfo.value.family, excinfo.value.kind) == ("issuer", "acme")

    # Only the duplicated kind is refused; the forks' other connectors and the plain
    # target (same kind string, other family) are untouched.
    assert [s.kind for s in registry.kinds("issuer")] == ["keep"]
    assert registry.get("target", "alpha").cls is PlainTarget
    acme_plugin = next(p for p in registry.plugins if p.name == "certctl-issuer-acme")
    assert acme_plugin.connectors == ()


def test_same_class_twice_from_one_plugin_is_not_a_conflict(harness: Harness) -> None:
    alpha = make_issuer("alpha")
    harness.add("p", IssuerPlugin(alpha, alpha))
    registry = harness.collect()
    assert registry.failures == []
    assert registry.get("issuer", "alpha").cls is alpha


def test_same_class_from_two_plugins_is_a_conflict(harness: Harness) -> None:
    alpha = make_issuer("alpha")
    harness.add("p1", IssuerPlugin(alpha))
    harness.add("p2", IssuerPlugin(alpha))
    registry = harness.collect()
    assert len(registry.failures) == 2
    with pytest.raises(UnknownConnectorKind, match=r"\(p1 \(.*\) and p2 \("):
        registry.get("issuer", "alpha")


def test_unknown_kind_lists_what_is_installed(harness: Harness) -> None:
    harness.add("p", IssuerPlugin(make_issuer("beta"), make_issuer("alpha")))
    registry = harness.collect()
    with pytest.raises(UnknownConnectorKind) as excinfo:
        registry.get("issuer", "acme")
    assert str(excinfo.value) == (
        "no issuer connector of kind 'acme' is installed (installed: alpha, beta)"
    )
    with pytest.raises(UnknownConnectorKind, match=r"installed: none"):
        registry.get("scanner", "nmap")
    with pytest.raises(UnknownConnectorKind, match=r"unknown connector family 'issuers'"):
        registry.get("issuers", "alpha")
    with pytest.raises(ValueError, match=r"unknown connector family 'issuers'"):
        registry.kinds("issuers")


def test_unknown_provenance_is_marked(harness: Harness) -> None:
    harness.pm.register(IssuerPlugin(make_issuer("stray")), name="stray")
    registry = harness.collect()
    assert registry.get("issuer", "stray").distribution == "(unknown: stray)"


def test_blocked_names_are_not_listed(harness: Harness) -> None:
    harness.pm.set_blocked("certctl-issuer-blocked")
    harness.add("p", IssuerPlugin(make_issuer("alpha")))
    assert [p.name for p in harness.collect().plugins] == ["p"]


def test_failures_and_trace_are_logged(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.registry")
    harness.add("bad", IssuerPlugin(make_issuer("Bad")), dist="certctl-issuer-bad", version="4")
    harness.add("good", IssuerPlugin(make_issuer("good")))
    with caplog.at_level(logging.INFO, logger="test.registry"):
        harness.collect(logger=logger, trace=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("plugin bad (certctl-issuer-bad 4): ")
    traces = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("register_issuers of plugin good returned [<class" in t for t in traces)


def test_trace_off_logs_no_info(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.add("good", IssuerPlugin(make_issuer("good")))
    with caplog.at_level(logging.INFO, logger="test.registry"):
        harness.collect(logger=logging.getLogger("test.registry"))
    assert caplog.records == []


def test_collect_runs_once(harness: Harness) -> None:
    registry = harness.collect()
    with pytest.raises(RuntimeError, match="runs once"):
        registry.collect(harness.pm, harness.provenance)


def test_config_with_required_fields_is_accepted(harness: Harness) -> None:
    harness.add("p", IssuerPlugin(make_issuer("url", Config=NeedsUrlConfig)))
    assert harness.collect().get("issuer", "url").cls.Config is NeedsUrlConfig
