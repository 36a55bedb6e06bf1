"""Pluggy hookimpls: algorithm ``apo`` and export format ``prompt``."""

from __future__ import annotations

from typing import Any

from agl_core.plugins.hookspecs import hookimpl


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    from agl_apo.factory import build_apo

    return {"apo": build_apo}


@hookimpl
def agl_exporters() -> dict[str, Any]:
    from agl_apo.export import export_prompt

    return {"prompt": export_prompt}
