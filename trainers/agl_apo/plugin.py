"""Pluggy hookimpls: algorithm ``apo`` and export format ``prompt``.

Registering imports only the options schema; the factory loads the search (and openai) when called.
"""

from __future__ import annotations

from typing import Any

from agl_apo.config import APOOptions
from agl_core.plugins.hookspecs import hookimpl
from agl_core.training.registry import AlgorithmRegistrar


def _build_apo(config: Any, *, resume: bool = False) -> Any:
    from agl_apo.factory import build_apo

    return build_apo(config, resume=resume)


@hookimpl
def agl_register_algorithms(registrar: AlgorithmRegistrar) -> None:
    registrar.add("apo", factory=_build_apo, schema=APOOptions, extra="apo", section="apo")


@hookimpl
def agl_exporters() -> dict[str, Any]:
    from agl_apo.export import export_prompt

    return {"prompt": export_prompt}
