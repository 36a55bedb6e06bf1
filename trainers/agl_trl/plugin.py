"""The ``agl_trl`` plugin of Agent Lightning (entry point ``agl_trl = "agl_trl.plugin"``).

A plain module of hookimpls; keep imports light — it loads with every ``agent-lightning`` command.
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins.hookspecs import hookimpl


@hookimpl
def agl_cli_commands() -> list[Any]:
    from agl_trl.serve.cli import serve

    return [serve]


def _lazy(module: str, attr: str) -> Any:
    """A function that imports `module` (torch, trl) only when called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    return call


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {name: _lazy("agl_trl.trainers", f"{name}_factory") for name in ("grpo", "rloo", "sft")}


@hookimpl
def agl_exporters() -> dict[str, Any]:
    return {"hf": _lazy("agl_trl.export", "export_hf"), "lora": _lazy("agl_trl.export", "export_lora")}
