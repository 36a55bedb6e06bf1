"""Hookimpls that the core registers for itself."""

from __future__ import annotations

from typing import Any

from agl_core.plugins.hookspecs import hookimpl
from agl_core.training.export_traces import export_traces_jsonl


@hookimpl
def agl_exporters() -> dict[str, Any]:
    return {"traces-jsonl": export_traces_jsonl}
