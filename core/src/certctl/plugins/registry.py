"""The connector registry: which connector classes are installed, and who provided them.

:meth:`ConnectorRegistry.collect` calls each plugin's registration hook implementation on its own
(rather than ``pm.hook.register_issuers()``), so it knows which distribution supplied every class
and one broken plugin cannot hide the others. Every returned class is checked against the
contract the rest of the server relies on; anything wrong becomes a :class:`PluginLoadFailure`
that ``certctl plugins`` and ``GET /api/v1/plugins`` show, never a crash at start-up.

A ``kind`` is stored in the database with every configured connector, so a duplicate kind within
a family registers *neither* class: taking the last one (or renaming one) would silently change
what existing rows mean. The operator disables one of the two plugins instead.
"""

from __future__ import annotations

import inspect
import logging
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
import pluggy

from certctl_sdk import (
    AuthProvider,
    Connector,
    ConnectorConfig,
    Issuer,
    Notifier,
    Scanner,
    Target,
    config_schema,
)

__all__ = [
    "FAMILY_BASES",
    "FAMILY_HOOKS",
    "KIND_PATTERN",
    "ConnectorRegistry",
    "ConnectorSpec",
    "PluginInfo",
    "PluginLoadFailure",
    "Provenance",
    "UnknownConnectorKind",
]

FAMILY_HOOKS: Mapping[str, str] = {
    "issuer": "register_issuers",
    "target": "register_targets",
    "notifier": "register_notifiers",
    "auth": "register_auth_providers",
    "scanner": "register_scanners",
}
"""Connector family → the registration hook that supplies its classes."""

FAMILY_BASES: Mapping[str, type[Connector[Any]]] = {
    "issuer": Issuer,
    "target": Target,
    "notifier": Notifier,
    "auth": AuthProvider,
    "scanner": Scanner,
}
"""Connector family → the SDK base class every connector of that family must subclass."""

KIND_PATTERN = re.compile(r"[a-z][a-z0-9-]*")
"""A connector ``kind``: a lowercase slug (matched in full)."""

_DISABLE_HINT = "disable one of them with CERTCTL_DISABLE_PLUGINS"


class Provenance(NamedTuple):
    """Where a registered plugin came from: kept by the host, never read from pluggy internals."""

    distribution: str
    version: str


class ConnectorSpec(msgspec.Struct, frozen=True):
    """One installed connector class and the distribution that provides it."""

    family: str
    kind: str
    cls: type[Connector[Any]]
    distribution: str
    version: str

    @property
    def class_path(self) -> str:
        """The class as ``"module:QualName"``, for listings and logs."""
        return _class_path(self.cls)


class PluginInfo(msgspec.Struct, frozen=True):
    """A registered plugin, as ``certctl plugins`` and the API list it.

    ``connectors`` holds ``(family, kind, "module:Class")`` for every connector that registered.
    """

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    connectors: tuple[tuple[str, str, str], ...]


class PluginLoadFailure(msgspec.Struct, frozen=True):
    """Something a plugin provides could not be used; the rest of the server still runs."""

    name: str
    distribution: str
    version: str
    error: str


class UnknownConnectorKind(LookupError):
    """No usable connector of this family and kind is installed.

    When the kind was refused because two plugins provide it, the message names both
    distributions and tells the operator how to resolve it.
    """

    def __init__(
        self,
        family: str,
        kind: str,
        *,
        conflicting: Sequence[str] = (),
        available: Sequence[str] = (),
    ) -> None:
        self.family = family
        self.kind = kind
        self.conflicting = tuple(conflicting)
        if self.conflicting:
            message = (
                f"{family} kind {kind!r} is provided by more than one plugin "
                f"({' and '.join(self.conflicting)}), so none of them was registered; "
                f"{_DISABLE_HINT}"
            )
        elif family not in FAMILY_HOOKS:
            message = f"unknown connector family {family!r} (known: {', '.join(FAMILY_HOOKS)})"
        else:
            installed = ", ".join(available) if available else "none"
            message = (
                f"no {family} connector of kind {kind!r} is installed (installed: {installed})"
            )
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class ConnectorRegistry:
    """Installed connector classes by family and kind, plus plugin listings and load failures.

    Build one per plugin manager (the app factory and every test build their own) and fill it
    with :meth:`collect` once. ``failures`` also receives the loader's import failures, so one
    list answers "what did not load, and why?".
    """

    def __init__(self) -> None:
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginLoadFailure] = []
        self._specs: dict[tuple[str, str], ConnectorSpec] = {}
        self._owners: dict[tuple[str, str], str] = {}
        self._conflicts: dict[tuple[str, str], tuple[str, ...]] = {}
        self._collected = False

    def get(self, family: str, kind: str) -> ConnectorSpec:
        """Return the connector registered for ``family``/``kind``.

        Raises:
            UnknownConnectorKind: nothing registered it, or two plugins did and both were refused.
        """
        spec = self._specs.get((family, kind))
        if spec is not None:
            return spec
        available = [s.kind for s in self.kinds(family)] if family in FAMILY_HOOKS else []
        raise UnknownConnectorKind(
            family,
            kind,
            conflicting=self._conflicts.get((family, kind), ()),
            available=available,
        )

    def kinds(self, family: str) -> list[ConnectorSpec]:
        """Every connector registered in ``family``, sorted by kind.

        Raises:
            ValueError: ``family`` is not a connector family (a typo must not look like "none").
        """
        if family not in FAMILY_HOOKS:
            raise ValueError(
                f"unknown connector family {family!r} (known: {', '.join(FAMILY_HOOKS)})"
            )
        return sorted(
            (spec for (fam, _), spec in self._specs.items() if fam == family),
            key=lambda spec: spec.kind,
        )

    def collect(
        self,
        pm: pluggy.PluginManager,
        provenance: Mapping[str, tuple[str, str]],
        *,
        logger: logging.Logger | None = None,
        trace: bool = False,
    ) -> None:
        """Call every registration hook implementation of ``pm`` and register what validates.

        ``provenance`` maps a registered plugin's name to ``(distribution, version)``. Failures
        are appended to :attr:`failures` and logged at ERROR; with ``trace`` each
        implementation's result is logged at INFO (pluggy's call monitoring cannot see these
        calls, because the registry makes them one implementation at a time).
        """
        if self._collected:
            raise RuntimeError("ConnectorRegistry.collect() runs once; build a new registry")
        self._collected = True
        log = logger or logging.getLogger(__name__)

        def origin(name: str) -> Provenance:
            dist, version = provenance.get(name, (f"(unknown: {name})", ""))
            return Provenance(dist, version)

        def fail(name: str, error: str) -> None:
            dist, version = origin(name)
            self.failures.append(PluginLoadFailure(name, dist, version, error))
            log.error("plugin %s (%s %s): %s", name, dist, version, error)

        # (family, kind) -> [(plugin name, class)], unique pairs in hook-call order.
        candidates: dict[tuple[str, str], list[tuple[str, type[Connector[Any]]]]] = {}
        for family, hook_name in FAMILY_HOOKS.items():
            caller: pluggy.HookCaller | None = getattr(pm.hook, hook_name, None)
            if caller is None:
                continue
            for impl in reversed(caller.get_hookimpls()):  # pluggy's call order
                returned = self._call_registration(impl, hook_name, fail)
                if trace:
                    log.info(
                        "hook %s of plugin %s returned %s",
                        hook_name,
                        impl.plugin_name,
                        reprlib.repr(returned),
                    )
                for obj in returned:
                    problem = _check_connector(family, hook_name, obj)
                    if problem is not None:
                        fail(impl.plugin_name, problem)
                        continue
                    key = (family, obj.kind)
                    entry = (impl.plugin_name, obj)
                    if entry not in candidates.setdefault(key, []):
                        candidates[key].append(entry)

        for (family, kind), entries in candidates.items():
            if len(entries) == 1:
                name, cls = entries[0]
                dist, version = origin(name)
                self._specs[(family, kind)] = ConnectorSpec(family, kind, cls, dist, version)
                self._owners[(family, kind)] = name
                log.debug("plugin %s provides %s kind %r", name, family, kind)
                continue
            described = tuple(
                sorted(f"{origin(name).distribution} ({_class_path(cls)})" for name, cls in entries)
            )
            self._conflicts[(family, kind)] = described
            for name in sorted({name for name, _ in entries}):
                fail(
                    name,
                    f"{family} kind {kind!r} is provided by {' and '.join(described)}; "
                    f"neither was registered because kinds are stored in the database; "
                    f"{_DISABLE_HINT}",
                )

        self.plugins = [
            self._plugin_info(pm, name, plugin, origin(name))
            for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0])
            if plugin is not None
        ]

    def _call_registration(
        self,
        impl: pluggy.HookImpl,
        hook_name: str,
        fail: Callable[[str, str], None],
    ) -> list[Any]:
        """Call one implementation and return what it provides; failures become ``[]``."""
        if impl.wrapper or impl.hookwrapper:
            fail(impl.plugin_name, f"{hook_name} cannot be a hook wrapper; return classes")
            return []
        try:
            result = impl.function()
            if not isinstance(result, Iterable) or isinstance(result, str | bytes):
                fail(
                    impl.plugin_name,
                    f"{hook_name}() returned {reprlib.repr(result)}; return an iterable of classes",
                )
                return []
            return list(result)
        except Exception as exc:  # noqa: BLE001 - any plugin bug becomes a recorded failure
            fail(impl.plugin_name, f"{hook_name}() raised {type(exc).__name__}: {exc}")
            return []

    def _plugin_info(
        self, pm: pluggy.PluginManager, name: str, plugin: object, origin: Provenance
    ) -> PluginInfo:
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        connectors = sorted(
            (spec.family, spec.kind, spec.class_path)
            for key, spec in self._specs.items()
            if self._owners[key] == name
        )
        return PluginInfo(
            name, origin.distribution, origin.version, tuple(hooks), tuple(connectors)
        )


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_connector(family: str, hook_name: str, obj: object) -> str | None:
    """Return why ``obj`` cannot be a connector of ``family``, or None when it can."""
    if not isinstance(obj, type):
        return f"{hook_name}() returned {reprlib.repr(obj)}, which is not a class"
    name = _class_path(obj)
    base = FAMILY_BASES[family]
    if not issubclass(obj, base):
        return f"{name} is not a subclass of certctl_sdk.{base.__name__}"
    if getattr(obj, "family", None) != family:
        return f"{name} declares family {getattr(obj, 'family', None)!r}, expected {family!r}"
    kind = getattr(obj, "kind", None)
    if not isinstance(kind, str) or KIND_PATTERN.fullmatch(kind) is None:
        return f"{name}.kind {kind!r} is not a lowercase slug matching ^{KIND_PATTERN.pattern}$"
    display_name = getattr(obj, "display_name", None)
    if not isinstance(display_name, str) or not display_name.strip():
        return f"{name}.display_name must be a non-empty string"
    config = getattr(obj, "Config", None)
    if not (isinstance(config, type) and issubclass(config, ConnectorConfig)):
        return f"{name}.Config must be a subclass of certctl_sdk.ConnectorConfig"
    try:
        config_schema(config)
    except Exception as exc:  # noqa: BLE001 - msgspec raises several types for bad annotations
        return f"the JSON Schema of {_class_path(config)} cannot be rendered: {exc}"
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        return f"{name} is abstract; it must implement {missing}"
    return None
