"""Hookimpls that the core registers for itself."""

from __future__ import annotations

from typing import Any

from agl_core.hookspecs import hookimpl


@hookimpl
def agl_task_sets() -> dict[str, Any]:
    from agl_core.tasksets import BUILTIN_TASK_SETS

    return dict(BUILTIN_TASK_SETS)


@hookimpl
def agl_exporters() -> dict[str, Any]:
    from agl_core.export_traces import export_traces_jsonl

    return {"traces-jsonl": export_traces_jsonl}
