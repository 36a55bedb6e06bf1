"""The pluggy plugin manager: plugins come from the ``agentlightning.plugins`` entry points."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import Any

import pluggy

from agl_core import hookspecs

log = logging.getLogger("agentlightning")

ENTRY_POINT_GROUP = "agentlightning.plugins"


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    from agl_core import builtin_plugin

    pm.register(builtin_plugin, name="agl_core.builtin")
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
    """Instrument every installed framework (or those named); idempotent. Returns what was done."""
    from agl_core.telemetry import configure

    configure()
    names = frozenset(frameworks) if frameworks is not None else None
    return [r for r in get_plugin_manager().hook.agl_instrument(frameworks=names) if r]


def uninstrument() -> None:
    get_plugin_manager().hook.agl_uninstrument()
