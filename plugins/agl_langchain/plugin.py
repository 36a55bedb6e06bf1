"""Pluggy hookimpls of the LangChain plugin: they drive :class:`LangChainInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "langchain"


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "langchain-core", "versions": ">=1.0,<2", "extra": "langchain"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and NAME not in frameworks:
        return None
    try:
        from agl_langchain.instrumentor import LangChainInstrumentor

        instrumentor = LangChainInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        return NAME if instrumentor.is_instrumented_by_opentelemetry else None
    except Exception:
        log.exception("could not instrument %s", NAME)
        return None


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_langchain.instrumentor import LangChainInstrumentor

        instrumentor = LangChainInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    except Exception:
        log.exception("could not uninstrument %s", NAME)
