"""Pluggy hookimpls of the OpenAI Agents SDK plugin: they drive :class:`OpenAIAgentsInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "openai_agents"


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "openai-agents", "versions": ">=0.3,<0.21", "extra": "openai-agents"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and NAME not in frameworks:
        return None
    try:
        from agl_openai_agents.instrumentor import OpenAIAgentsInstrumentor

        instrumentor = OpenAIAgentsInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        if frameworks is not None and "openai" not in frameworks:
            # the SDK's LLM calls are recorded by the openai plugin (one chat span per request)
            from agl_core.plugin_manager import instrument

            instrument(["openai"])
        return NAME if instrumentor.is_instrumented_by_opentelemetry else None
    except Exception:
        log.exception("could not instrument %s", NAME)
        return None


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_openai_agents.instrumentor import OpenAIAgentsInstrumentor

        instrumentor = OpenAIAgentsInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    except Exception:
        log.exception("could not uninstrument %s", NAME)
