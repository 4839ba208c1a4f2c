"""load_plugins and notify_event: the guarded entry-point loader, lists, tracing, observers.

Entry-point tests install fake distributions into a temporary directory on ``sys.path`` (a
``*.dist-info`` with METADATA and entry_points.txt next to a module), so ``importlib.metadata``
finds them exactly as it finds real wheels. Each test passes ``load=[...]`` naming only its own
fakes, so the workspace's real plugins never influence the outcome.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import certctl
from certctl.plugins import (
    BUILTIN_DISTRIBUTION,
    PluginLoadFailure,
    UnknownConnectorKind,
    load_plugins,
    notify_event,
)
from certctl_sdk import EventType, LifecycleEvent, hookimpl

LOGGER = "test.certctl.plugins"

HEADER = """
from certctl_sdk import ConnectorConfig, Issuer, hookimpl


class Cfg(ConnectorConfig, frozen=True, kw_only=True):
    pass


async def _issue(self, request):
    raise NotImplementedError


def issuer(kind, **attrs):
    namespace = {
        "__module__": __name__,
        "kind": kind,
        "display_name": "Fake " + kind,
        "Config": Cfg,
        "issue": _issue,
    }
    namespace.update(attrs)
    for name in [k for k, v in namespace.items() if v is ...]:
        del namespace[name]
    return type("Fake_" + kind.replace("-", "_"), (Issuer,), namespace)
"""


def issuers_plugin(*exprs: str) -> str:
    """Source of a plugin module whose register_issuers returns ``[expr, ...]``."""
    body = ", ".join(exprs)
    return HEADER + f"\n\n@hookimpl\ndef register_issuers():\n    return [{body}]\n"


class FakeSite:
    """A directory on sys.path holding fake installed distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []
        self._suffix = uuid.uuid4().hex[:8]

    def install(
        self,
        dist: str,
        source: str,
        *,
        version: str = "1.0",
        entry_point: str | None = None,
    ) -> str:
        """Install ``dist`` whose ``certctl`` entry point names a module holding ``source``."""
        module = f"{dist.replace('-', '_')}_{self._suffix}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[certctl]\n{entry_point or dist} = {module}\n")
        self.modules.append(module)
        importlib.invalidate_caches()
        return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fake = FakeSite(root)
    yield fake
    for module in fake.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


def failures_by_dist(failures: list[PluginLoadFailure]) -> dict[str, PluginLoadFailure]:
    return {f.distribution: f for f in failures}


# --- the entry-point path ---------------------------------------------------------------------


def test_entry_points_load_with_provenance(site: FakeSite) -> None:
    module = site.install("certctl-issuer-fa", issuers_plugin("issuer('fa')"), version="1.4")
    site.install("certctl-issuer-fb", issuers_plugin("issuer('fb')"), version="0.2")

    host = load_plugins(load=["certctl-issuer-fa", "certctl-issuer-fb"])

    assert host.registry.failures == []
    spec = host.registry.get("issuer", "fa")
    assert (spec.distribution, spec.version) == ("certctl-issuer-fa", "1.4")
    assert spec.cls.__module__ == module
    assert host.pm.get_plugin("certctl-issuer-fa") is sys.modules[module]
    assert host.provenance["certctl-issuer-fb"] == ("certctl-issuer-fb", "0.2")
    info = {p.name: p for p in host.registry.plugins}
    assert info["certctl-issuer-fa"].hooks == ("register_issuers",)
    assert info["certctl-issuer-fa"].connectors == (("issuer", "fa", f"{module}:Fake_fa"),)
    assert info["certctl-issuer-fb"].version == "0.2"


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("raise ImportError('vendor SDK missing')", "ImportError: vendor SDK missing"),
        ("import certctl_no_such_module_xyz", "ModuleNotFoundError: No module named"),
        ("raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
        ("1 / 0", "ZeroDivisionError: division by zero"),
    ],
)
def test_plugin_failing_at_import_is_reported_and_others_load(
    site: FakeSite,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    statement: str,
    error: str,
) -> None:
    site.install("certctl-issuer-broken", statement + "\n", version="6.6")
    site.install("certctl-issuer-fine", issuers_plugin("issuer('fine')"))

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        host = load_plugins(load=["certctl-issuer-broken", "certctl-issuer-fine"], logger=logger)

    [failure] = host.registry.failures
    assert (failure.name, failure.distribution, failure.version) == (
        "certctl-issuer-broken",
        "certctl-issuer-broken",
        "6.6",
    )
    assert failure.error.startswith(error)
    assert host.registry.get("issuer", "fine").distribution == "certctl-issuer-fine"
    assert not host.pm.has_plugin("certctl-issuer-broken")
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert "certctl-issuer-broken" in record.getMessage()
    assert error in record.getMessage()


def test_invalid_classes_from_an_entry_point_are_failures(site: FakeSite) -> None:
    site.install(
        "certctl-issuer-sloppy",
        issuers_plugin(
            "dict",  # not an Issuer
            "issuer('Not A Slug')",
            "issuer('nameless', display_name=...)",
            "issuer('valid')",
        ),
        version="0.1",
    )
    host = load_plugins(load=["certctl-issuer-sloppy"])

    errors = " | ".join(f.error for f in host.registry.failures)
    assert {f.distribution for f in host.registry.failures} == {"certctl-issuer-sloppy"}
    assert {f.version for f in host.registry.failures} == {"0.1"}
    assert len(host.registry.failures) == 3
    assert "builtins:dict is not a subclass of certctl_sdk.Issuer" in errors
    assert ":Fake_nameless.display_name must be a non-empty string" in errors
    assert "kind 'Not A Slug' is not a lowercase slug" in errors
    assert [s.kind for s in host.registry.kinds("issuer")] == ["valid"]


def test_two_distributions_with_one_kind_are_both_refused(site: FakeSite) -> None:
    site.install("certctl-issuer-acme", issuers_plugin("issuer('acme')"), version="1.0")
    site.install("certctl-issuer-acme2", issuers_plugin("issuer('acme')", "issuer('own')"))

    host = load_plugins(load=["certctl-issuer-acme", "certctl-issuer-acme2"])

    failures = failures_by_dist(host.registry.failures)
    assert set(failures) == {"certctl-issuer-acme", "certctl-issuer-acme2"}
    for failure in failures.values():
        assert "certctl-issuer-acme (" in failure.error
        assert "certctl-issuer-acme2 (" in failure.error
    with pytest.raises(UnknownConnectorKind) as excinfo:
        host.registry.get("issuer", "acme")
    message = str(excinfo.value)
    assert "certctl-issuer-acme (" in message
    assert "certctl-issuer-acme2 (" in message
    assert "CERTCTL_DISABLE_PLUGINS" in message
    assert [s.kind for s in host.registry.kinds("issuer")] == ["own"]


def test_disabling_one_of_the_duplicates_resolves_it(site: FakeSite) -> None:
    site.install("certctl-issuer-acme", issuers_plugin("issuer('acme')"))
    site.install("certctl-issuer-acme2", issuers_plugin("issuer('acme')"))
    host = load_plugins(
        load=["certctl-issuer-acme", "certctl-issuer-acme2"], disable=["certctl-issuer-acme2"]
    )
    assert host.registry.failures == []
    assert host.registry.get("issuer", "acme").distribution == "certctl-issuer-acme"


def test_allow_list_loads_only_named_plugins(site: FakeSite) -> None:
    site.install("certctl-issuer-in", issuers_plugin("issuer('in')"))
    skipped = site.install("certctl-issuer-out", issuers_plugin("issuer('out')"))

    # Matched after PEP 503 normalisation, so the import name spelling works too.
    host = load_plugins(load=["Certctl_Issuer_In"])

    assert [s.kind for s in host.registry.kinds("issuer")] == ["in"]
    assert skipped not in sys.modules  # never imported, not merely unregistered
    assert [p.name for p in host.registry.plugins] == ["certctl-issuer-in"]


def test_allow_list_matches_the_distribution_name_too(site: FakeSite) -> None:
    site.install("certctl-issuer-odd", issuers_plugin("issuer('odd')"), entry_point="odd-name")
    host = load_plugins(load=["certctl-issuer-odd"])
    assert host.registry.get("issuer", "odd").distribution == "certctl-issuer-odd"
    assert host.pm.has_plugin("odd-name")


def test_empty_allow_list_loads_no_entry_points(site: FakeSite) -> None:
    module = site.install("certctl-issuer-in", issuers_plugin("issuer('in')"))
    host = load_plugins(load=[])
    assert host.registry.plugins == []
    assert module not in sys.modules


def test_unknown_allow_list_name_is_a_warning(
    site: FakeSite, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        host = load_plugins(load=["certctl-issuer-typo"], logger=logger)
    assert host.registry.failures == []
    assert "certctl-issuer-typo is in the allow-list but is not installed" in caplog.text


def test_block_list_skips_and_keeps_blocked(site: FakeSite) -> None:
    site.install("certctl-issuer-keep", issuers_plugin("issuer('keep')"))
    blocked = site.install("certctl-issuer-drop", issuers_plugin("issuer('drop')"))

    host = load_plugins(
        load=["certctl-issuer-keep", "certctl-issuer-drop"], disable=["certctl-issuer-drop"]
    )

    assert [s.kind for s in host.registry.kinds("issuer")] == ["keep"]
    assert host.registry.failures == []
    assert blocked not in sys.modules
    assert host.pm.is_blocked("certctl-issuer-drop")
    assert host.pm.register(types.ModuleType("late"), name="certctl-issuer-drop") is None


def test_block_list_by_distribution_blocks_the_entry_point_name(site: FakeSite) -> None:
    site.install("certctl-issuer-odd", issuers_plugin("issuer('odd')"), entry_point="odd-name")
    host = load_plugins(load=["odd-name"], disable=["certctl_issuer_odd"])
    assert host.pm.is_blocked("odd-name")
    with pytest.raises(UnknownConnectorKind):
        host.registry.get("issuer", "odd")


def test_misspelt_hookimpl_is_a_failure_for_that_plugin(site: FakeSite) -> None:
    site.install(
        "certctl-issuer-typo",
        HEADER
        + textwrap.dedent("""
            @hookimpl
            def register_issuers():
                return [issuer('typo')]

            @hookimpl
            def register_issuer():
                return []
            """),
        version="0.3",
    )
    site.install("certctl-issuer-fine", issuers_plugin("issuer('fine')"))

    host = load_plugins(load=["certctl-issuer-typo", "certctl-issuer-fine"])

    [failure] = host.registry.failures
    assert (failure.name, failure.distribution, failure.version) == (
        "certctl-issuer-typo",
        "certctl-issuer-typo",
        "0.3",
    )
    assert failure.error == (
        "PluginValidationError: unknown hook 'register_issuer' (did you mean 'register_issuers'?)"
    )
    # The whole plugin is out, including its correctly spelt hook.
    assert not host.pm.has_plugin("certctl-issuer-typo")
    assert [s.kind for s in host.registry.kinds("issuer")] == ["fine"]
    host.pm.check_pending()  # nothing unknown is left behind


def test_hookimpl_with_arguments_the_spec_lacks_is_a_failure(site: FakeSite) -> None:
    site.install(
        "certctl-issuer-args",
        HEADER + "\n@hookimpl\ndef register_issuers(settings):\n    return []\n",
    )
    host = load_plugins(load=["certctl-issuer-args"])
    [failure] = host.registry.failures
    assert failure.distribution == "certctl-issuer-args"
    assert failure.error.startswith("PluginValidationError: ")
    assert "settings" in failure.error


def test_second_distribution_reusing_an_entry_point_name_is_a_failure(site: FakeSite) -> None:
    site.install("certctl-issuer-aaa", issuers_plugin("issuer('aaa')"), entry_point="shared")
    site.install("certctl-issuer-bbb", issuers_plugin("issuer('bbb')"), entry_point="shared")

    host = load_plugins(load=["shared"])

    [failure] = host.registry.failures
    loaded = host.provenance["shared"].distribution
    assert {loaded, failure.distribution} == {"certctl-issuer-aaa", "certctl-issuer-bbb"}
    assert f"already used by {loaded}" in failure.error
    assert len(host.registry.kinds("issuer")) == 1


def test_two_entry_points_naming_one_module_register_it_once(site: FakeSite) -> None:
    module = site.install("certctl-issuer-twice", issuers_plugin("issuer('twice')"))
    with (site.root / "certctl_issuer_twice-1.0.dist-info" / "entry_points.txt").open("a") as f:
        f.write(f"certctl-issuer-twice-alias = {module}\n")
    importlib.invalidate_caches()

    host = load_plugins(load=["certctl-issuer-twice"])

    [failure] = host.registry.failures
    assert failure.name == "certctl-issuer-twice-alias"
    assert failure.error == (
        "ValueError: the same object is already registered as 'certctl-issuer-twice'"
    )
    assert host.registry.get("issuer", "twice").distribution == "certctl-issuer-twice"


# --- extra (built-in) plugins, isolation, tracing ---------------------------------------------


def make_module(name: str, **hooks: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def test_extra_plugins_are_builtins(site: FakeSite) -> None:
    from_ep = site.install("certctl-issuer-ep", issuers_plugin("issuer('ep')"))
    ep_module = importlib.import_module(from_ep)
    builtin = make_module(
        "certctl.builtin_test", register_issuers=lambda: [ep_module.issuer("builtin")]
    )

    host = load_plugins(load=["certctl-issuer-ep"], extra_plugins=[builtin])

    assert host.registry.failures == []
    spec = host.registry.get("issuer", "builtin")
    assert (spec.distribution, spec.version) == (BUILTIN_DISTRIBUTION, certctl.__version__)
    assert host.pm.get_plugin("certctl.builtin_test") is builtin
    assert host.registry.get("issuer", "ep").distribution == "certctl-issuer-ep"


def test_extra_plugins_honour_the_block_list() -> None:
    builtin = make_module("certctl.builtin_blocked", track_event=lambda event: None)
    host = load_plugins(load=[], disable=["certctl.builtin_blocked"], extra_plugins=[builtin])
    assert not host.pm.is_registered(builtin)
    assert host.registry.plugins == []


def test_extra_plugin_that_cannot_register_is_a_failure() -> None:
    module = make_module("certctl.builtin_twice", track_event=lambda event: None)
    host = load_plugins(load=[], extra_plugins=[module, module])
    [failure] = host.registry.failures
    assert (failure.name, failure.distribution) == ("certctl.builtin_twice", BUILTIN_DISTRIBUTION)
    assert (
        failure.error == "ValueError: a plugin named 'certctl.builtin_twice' is already registered"
    )


def test_misspelt_hook_in_an_extra_plugin_is_a_failure() -> None:
    module = make_module("certctl.builtin_typo", track_events=lambda event: None)
    host = load_plugins(load=[], extra_plugins=[module])
    [failure] = host.registry.failures
    assert "'track_events' (did you mean 'track_event'?)" in failure.error
    assert not host.pm.is_registered(module)


def test_each_call_builds_an_independent_manager() -> None:
    module = make_module("certctl.builtin_once", track_event=lambda event: None)
    first = load_plugins(load=[], extra_plugins=[module])
    second = load_plugins(load=[])
    assert first.pm is not second.pm
    assert first.pm.is_registered(module)
    assert not second.pm.is_registered(module)
    assert second.registry is not first.registry


def test_trace_logs_hook_calls(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    module = make_module("certctl.builtin_traced", track_event=lambda event: None)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        host = load_plugins(load=[], extra_plugins=[module], trace=True, logger=logger)
        host.pm.hook.track_event(event=_event())
    messages = [r.getMessage() for r in caplog.records]
    assert "hook track_event(event) -> plugins ['certctl.builtin_traced']" in messages
    assert "hook track_event returned []" in messages


def test_no_trace_by_default(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    module = make_module("certctl.builtin_quiet", track_event=lambda event: None)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        host = load_plugins(load=[], extra_plugins=[module], logger=logger)
        host.pm.hook.track_event(event=_event())
    assert caplog.records == []


# --- notify_event ------------------------------------------------------------------------------


def _event() -> LifecycleEvent:
    return LifecycleEvent(type=EventType.CERTIFICATE_ISSUED, occurred_at=datetime.now(UTC))


class Observers:
    """track_event implementations of every flavour, recording what ran."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def plugins(self) -> list[object]:
        seen = self.seen

        class Sync:
            @hookimpl
            def track_event(self, event: LifecycleEvent) -> None:
                seen.append(f"sync:{event.type}")

        class Raising:
            @hookimpl
            def track_event(self, event: LifecycleEvent) -> None:
                raise RuntimeError("observer bug")

        class Slow:
            @hookimpl
            async def track_event(self, event: LifecycleEvent) -> None:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    seen.append("slow:cancelled")
                    raise
                seen.append("slow:finished")

        class AsyncRaising:
            @hookimpl
            async def track_event(self, event: LifecycleEvent) -> None:
                await asyncio.sleep(0)
                raise ValueError("async observer bug")

        class Async:
            @hookimpl
            async def track_event(self, event: LifecycleEvent) -> None:
                await asyncio.sleep(0)
                seen.append(f"async:{event.type}")

        class NoArgs:
            @hookimpl
            def track_event(self) -> None:
                seen.append("noargs")

        # pluggy calls the last registered first; notify_event keeps that order.
        return [Sync(), Raising(), Slow(), AsyncRaising(), Async(), NoArgs()]


async def test_notify_event_runs_each_observer_and_survives_failures(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    observers = Observers()
    host = load_plugins(load=[], extra_plugins=observers.plugins(), logger=logger)
    assert host.registry.failures == []

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await notify_event(host.pm, _event(), logger, timeout=0.05)

    assert observers.seen == [
        "noargs",
        "async:certificate.issued",
        "slow:cancelled",
        "sync:certificate.issued",
    ]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    by_message = {r.getMessage(): r for r in errors}
    timeout_messages = [m for m in by_message if "did not finish within 0.1 s" in m]
    assert len(timeout_messages) == 1
    failed = [r for m, r in by_message.items() if "failed for certificate.issued" in m]
    assert sorted(str(r.exc_info[1]) for r in failed if r.exc_info) == [
        "async observer bug",
        "observer bug",
    ]


async def test_notify_event_without_observers_is_a_no_op(logger: logging.Logger) -> None:
    host = load_plugins(load=[])
    await notify_event(host.pm, _event(), logger)


async def test_notify_event_skips_wrappers(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def track_event(self, event: LifecycleEvent) -> Iterator[None]:
            seen.append("wrapper")
            return (yield)

    class Plain:
        @hookimpl
        def track_event(self, event: LifecycleEvent) -> None:
            seen.append("plain")

    host = load_plugins(load=[], extra_plugins=[Plain(), Wrapper()])
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await notify_event(host.pm, _event(), logger)
    assert seen == ["plain"]
    assert "is a hook wrapper; skipped" in caplog.text


# --- the real workspace plugins -----------------------------------------------------------------


def test_workspace_local_issuer_loads_through_its_real_entry_point() -> None:
    assert "certctl-issuer-local" in importlib.metadata.entry_points(group="certctl").names
    host = load_plugins(load=["certctl-issuer-local"])
    assert host.registry.failures == []
    spec = host.registry.get("issuer", "local")
    assert spec.distribution == "certctl-issuer-local"
