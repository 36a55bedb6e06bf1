"""pluggy hooks of the Agent Framework plugin; they drive `AgentFrameworkInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "agent_framework"
#: names `agl.instrument([...])` accepts for this plugin (the package name and the extra name)
ALIASES = frozenset({NAME, "agent-framework"})


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "agent-framework-core", "versions": ">=1.20,<2", "extra": "agent-framework"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and not ALIASES & frameworks:
        return None
    try:
        from agl_agent_framework.instrumentor import AgentFrameworkInstrumentor

        AgentFrameworkInstrumentor().instrument(skip_dep_check=True)
    except ImportError:
        if frameworks is not None:
            log.warning("agent-framework is not installed: pip install 'agentlightning[agent-framework]'")
        return None
    except Exception:
        log.exception("could not instrument agent-framework")
        return None
    return NAME


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_agent_framework.instrumentor import AgentFrameworkInstrumentor

        AgentFrameworkInstrumentor().uninstrument()
    except Exception:
        log.exception("could not uninstrument agent-framework")
