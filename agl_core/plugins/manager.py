"""The pluggy plugin manager: plugins come from the ``agentlightning.plugins`` entry points.

Importing this module connects the registries of the lower layers (store URL schemes, task
sets) to the plugins' hooks, so the lower layers never import the plugin layer.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import sys
from typing import Any

import pluggy
import wrapt

from agl_core.plugins import builtin, hookspecs
from agl_core.runtime.telemetry import configure
from agl_core.store import registry as store_registry
from agl_core.tracing import autoinstrument
from agl_core.training import tasksets
from agl_core.training.registry import AlgorithmRegistrar, AlgorithmSpec

log = logging.getLogger("agentlightning")

ENTRY_POINT_GROUP = "agentlightning.plugins"


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="agl_core.builtin")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except Exception as exc:  # one broken plugin must not take the others down
            log.warning("plugin %s could not be loaded: %s", ep.name, exc)
            continue
        if pm.get_plugin(ep.name) is None and not pm.is_registered(plugin):
            pm.register(plugin, name=ep.name)
    return pm


def merged(hook_name: str) -> dict[str, Any]:
    """Merge the dicts returned by a registry hook (later plugins do not override earlier ones)."""
    out: dict[str, Any] = {}
    for result in reversed(getattr(get_plugin_manager().hook, hook_name)()):
        for key, value in (result or {}).items():
            out.setdefault(key, value)
    return out


def algorithms() -> dict[str, AlgorithmSpec]:
    """Every registered training algorithm by config name (asked anew: tests register plugins late)."""
    registrar = AlgorithmRegistrar()
    get_plugin_manager().hook.agl_register_algorithms(registrar=registrar)
    return registrar.algorithms


def framework_status() -> list[dict[str, Any]]:
    """Every framework plugin found, with whether its framework is installed and at what version."""
    rows = []
    pm = get_plugin_manager()
    for name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "agl_framework_info", None)
        info = impl() if impl else None
        if not info:
            continue
        try:
            version: str | None = importlib.metadata.version(info["package"])
        except importlib.metadata.PackageNotFoundError:
            version = None
        rows.append({**info, "plugin": name, "installed": version is not None, "installed_version": version})
    return rows


def instrument(frameworks: list[str] | None = None) -> list[str]:
    """Instrument every installed framework (or those named); idempotent. Returns what was done.

    Calling it is a choice: the first trace then instruments nothing more by itself."""
    autoinstrument.mark_chosen()
    return _instrument(frameworks)


def uninstrument() -> None:
    """Undo every plugin's instrumentation, and cancel what automatic instrumentation still awaits."""
    global _auto_cancelled
    autoinstrument.mark_chosen()
    _auto_cancelled = True
    get_plugin_manager().hook.agl_uninstrument()


def _instrument(frameworks: list[str] | None) -> list[str]:
    configure()
    names = frozenset(frameworks) if frameworks is not None else None
    return [r for r in get_plugin_manager().hook.agl_instrument(frameworks=names) if r]


_auto_cancelled = False


def auto_instrument() -> list[str]:
    """The first trace's instrumentation: each installed framework that is already imported now,
    each other one at its first import (so no framework is imported only to be instrumented).
    Returns what was instrumented now."""
    done: list[str] = []
    for row in framework_status():
        if not row["installed"]:
            continue
        module = row.get("module") or row["package"].replace("-", "_")
        if module in sys.modules:
            done += _instrument([row["name"]])
        else:
            wrapt.register_post_import_hook(functools.partial(_instrument_on_import, row["name"]), module)
    return done


def _instrument_on_import(name: str, module: object) -> None:
    if not _auto_cancelled:
        _instrument([name])


def _store_backend(scheme: str) -> Any:
    return merged("agl_store_backends").get(scheme)


store_registry.add_backend_finder(_store_backend)
tasksets.add_task_set_finder(lambda: merged("agl_task_sets"))
autoinstrument.set_instrumenter(auto_instrument)
