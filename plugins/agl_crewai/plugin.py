"""pluggy hooks of the CrewAI plugin; they drive `CrewAIInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "crewai"


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "crewai", "versions": ">=1.0,<2", "extra": "crewai"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and NAME not in frameworks:
        return None
    try:
        from agl_crewai.instrumentor import CrewAIInstrumentor

        CrewAIInstrumentor().instrument(skip_dep_check=True)
    except ImportError:
        if frameworks is not None:
            log.warning("crewai is not installed: pip install 'agentlightning[crewai]'")
        return None
    except Exception:
        log.exception("could not instrument crewai")
        return None
    return NAME


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_crewai.instrumentor import CrewAIInstrumentor

        CrewAIInstrumentor().uninstrument()
    except Exception:
        log.exception("could not uninstrument crewai")
