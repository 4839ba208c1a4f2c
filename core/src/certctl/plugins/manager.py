"""Build the plugin manager: our own guarded entry-point loader, then the connector registry.

We iterate the ``certctl`` entry points ourselves instead of calling
``pm.load_setuptools_entrypoints``: there, one plugin that fails to import aborts start-up, and a
second entry point with an already-used name disappears without a word. Here every problem is a
:class:`~certctl.plugins.registry.PluginLoadFailure` in ``registry.failures`` (and an ERROR log
line), and the server starts with everything else.

Nothing here is global: :func:`load_plugins` returns a new :class:`PluginHost` on every call, so
the app factory and each test get their own manager.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import importlib.metadata
import inspect
import logging
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from certctl import __version__
from certctl.plugins.registry import ConnectorRegistry, PluginLoadFailure, Provenance
from certctl_sdk import LifecycleEvent, hookspecs

__all__ = ["BUILTIN_DISTRIBUTION", "PluginHost", "load_plugins", "notify_event"]

_Fail = Callable[[str, Provenance, str], None]

BUILTIN_DISTRIBUTION = "(builtin)"
"""The distribution recorded for plugins passed in ``extra_plugins`` (they ship with core)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PluginHost:
    """The plugin manager and what was collected from it, built once per app (or per test)."""

    pm: pluggy.PluginManager
    registry: ConnectorRegistry
    provenance: Mapping[str, Provenance] = dataclasses.field(default_factory=dict)
    """Registered plugin name → (distribution, version)."""


def load_plugins(
    *,
    load: Sequence[str] | None = None,
    disable: Sequence[str] = (),
    trace: bool = False,
    extra_plugins: Sequence[object] = (),
    logger: logging.Logger | None = None,
) -> PluginHost:
    """Load the installed plugins into a fresh plugin manager and collect their connectors.

    Args:
        load: allow-list of entry-point or distribution names (``CERTCTL_LOAD_PLUGINS``);
            ``None`` loads every installed plugin, an empty list loads none. It applies to
            entry points only: ``extra_plugins`` are always registered.
        disable: block-list (``CERTCTL_DISABLE_PLUGINS``); the names stay blocked in the
            manager, so nothing can register them later. It applies to ``extra_plugins`` too,
            by their registration name (the module's ``__name__``).
        trace: log every hook call made through ``pm.hook`` (``CERTCTL_TRACE_PLUGINS``).
        extra_plugins: modules or objects holding hookimpls that ship with core (built-ins)
            or that a test supplies; recorded with distribution ``"(builtin)"``.
        logger: where load failures and traces go.
    """
    log = logger or logging.getLogger(__name__)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = ConnectorRegistry()
    provenance: dict[str, Provenance] = {}

    def fail(name: str, origin: Provenance, error: str) -> None:
        registry.failures.append(PluginLoadFailure(name, *origin, error))
        log.error("plugin %s (%s %s) was not loaded: %s", name, *origin, error)

    for name in disable:
        pm.set_blocked(name)

    _load_entry_points(pm, provenance, fail, log, load=load, disable=disable)

    for plugin in extra_plugins:
        origin = Provenance(BUILTIN_DISTRIBUTION, __version__)
        name = pm.get_canonical_name(plugin)
        if pm.has_plugin(name) or pm.is_registered(plugin):
            # pluggy's own message dumps every registered plugin; say just what matters.
            fail(name, origin, f"ValueError: a plugin named {name!r} is already registered")
            continue
        try:
            registered = pm.register(plugin)
        except Exception as exc:  # noqa: BLE001 - recorded, the server still starts
            fail(name, origin, f"{type(exc).__name__}: {_one_line(exc)}")
            continue
        if registered is None:
            log.info("plugin %s is disabled", name)
        else:
            provenance[registered] = origin

    _drop_unknown_hooks(pm, provenance, fail)

    if trace:
        _install_tracing(pm, log)

    registry.collect(pm, provenance, logger=log, trace=trace)
    return PluginHost(pm=pm, registry=registry, provenance=provenance)


async def notify_event(
    pm: pluggy.PluginManager,
    event: LifecycleEvent,
    logger: logging.Logger,
    timeout: float = 5.0,  # noqa: ASYNC109 - a per-implementation limit, not the whole call
) -> None:
    """Deliver ``event`` to each ``track_event`` implementation in turn; never raises.

    pluggy cannot await, so implementations are called one by one: a coroutine returned by an
    ``async def`` implementation is awaited with ``timeout``, and an error or timeout in one
    observer is logged and does not stop the others. Synchronous implementations run on the
    event loop and must be quick.
    """
    for impl in reversed(pm.hook.track_event.get_hookimpls()):  # pluggy's call order
        if impl.wrapper or impl.hookwrapper:
            logger.error("track_event of plugin %s is a hook wrapper; skipped", impl.plugin_name)
            continue
        kwargs: dict[str, Any] = {"event": event} if "event" in impl.argnames else {}
        try:
            result = impl.function(**kwargs)
            if inspect.isawaitable(result):
                async with asyncio.timeout(timeout):
                    await result
        except TimeoutError:
            logger.error(
                "track_event of plugin %s did not finish within %.1f s for %s",
                impl.plugin_name,
                timeout,
                event.type,
            )
        except Exception:  # an observer must never break the lifecycle
            logger.exception("track_event of plugin %s failed for %s", impl.plugin_name, event.type)


def _normalise(name: str) -> str:
    """PEP 503 normalisation, so ``certctl_issuer_local`` matches ``certctl-issuer-local``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _one_line(exc: BaseException) -> str:
    """pluggy's validation messages span lines; a failure record and a log line should not."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _load_entry_points(
    pm: pluggy.PluginManager,
    provenance: dict[str, Provenance],
    fail: _Fail,
    log: logging.Logger,
    *,
    load: Sequence[str] | None,
    disable: Sequence[str],
) -> None:
    """Import and register each ``certctl`` entry point, isolating every failure."""
    allowed = None if load is None else {_normalise(n) for n in load}
    blocked = {_normalise(n) for n in disable}
    matched: set[str] = set()
    entry_points = sorted(
        importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME), key=lambda ep: ep.name
    )
    for ep in entry_points:
        dist = ep.dist
        origin = Provenance(dist.name, dist.version) if dist else Provenance("(unknown)", "")
        names = {_normalise(ep.name), _normalise(origin.distribution)}
        if allowed is not None and not names & allowed:
            log.debug("plugin %s is not in the allow-list", ep.name)
            continue
        matched |= names
        if names & blocked or pm.is_blocked(ep.name):
            if not pm.is_blocked(ep.name):
                pm.set_blocked(ep.name)
            log.info("plugin %s (%s %s) is disabled", ep.name, *origin)
            continue
        if ep.name in provenance:
            fail(
                ep.name,
                origin,
                f"entry point name {ep.name!r} is already used by "
                f"{provenance[ep.name].distribution}; a plugin's entry point must be named "
                f"after its distribution",
            )
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the server
            fail(ep.name, origin, f"{type(exc).__name__}: {exc}")
            continue
        if pm.is_registered(plugin):
            other = pm.get_name(plugin)
            fail(ep.name, origin, f"ValueError: the same object is already registered as {other!r}")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl whose arguments the spec lacks
            fail(ep.name, origin, f"{type(exc).__name__}: {_one_line(exc)}")
            continue
        provenance[ep.name] = origin
    if allowed is not None:
        for missing in sorted(allowed - matched):
            log.warning("plugin %s is in the allow-list but is not installed", missing)


def _drop_unknown_hooks(
    pm: pluggy.PluginManager, provenance: Mapping[str, Provenance], fail: _Fail
) -> None:
    """Run ``pm.check_pending()``; unregister (and record) each plugin with an unknown hook.

    A misspelt hookimpl would otherwise be silently never called, or crash the server.
    """
    spec_names = [
        name for name in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, name) is not None
    ]
    while True:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = exc.plugin
            name = pm.get_name(plugin)
            if name is None:  # cannot happen for a registered plugin; avoid looping forever
                raise
            unknown = sorted(c.name for c in pm.get_hookcallers(plugin) or () if not c.has_spec())
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, spec_names, n=1)
                hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            pm.unregister(plugin)
            origin = provenance.get(name, Provenance("", ""))
            fail(name, origin, f"PluginValidationError: unknown hook {', '.join(hints)}")
        else:
            return


def _install_tracing(pm: pluggy.PluginManager, log: logging.Logger) -> None:
    """Log each ``pm.hook`` call and its outcome at INFO: the operator asked for it."""

    def before(
        hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]
    ) -> None:
        log.info(
            "hook %s(%s) -> plugins %s",
            hook_name,
            ", ".join(kwargs),
            [impl.plugin_name for impl in hook_impls],
        )

    def after(
        outcome: pluggy.Result[object],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        if outcome.exception is not None:
            log.info("hook %s raised %r", hook_name, outcome.exception)
        else:
            log.info("hook %s returned %s", hook_name, reprlib.repr(outcome.get_result()))

    pm.add_hookcall_monitoring(before, after)
