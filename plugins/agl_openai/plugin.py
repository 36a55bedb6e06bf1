"""Pluggy hookimpls of the openai plugin: they drive :class:`OpenAIInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "openai"


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "openai", "versions": ">=2.45,<3", "extra": "openai"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and NAME not in frameworks:
        return None
    try:
        from agl_openai.instrumentor import OpenAIInstrumentor

        instrumentor = OpenAIInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        return NAME if instrumentor.is_instrumented_by_opentelemetry else None
    except Exception:
        log.exception("could not instrument %s", NAME)
        return None


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_openai.instrumentor import OpenAIInstrumentor

        instrumentor = OpenAIInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    except Exception:
        log.exception("could not uninstrument %s", NAME)
