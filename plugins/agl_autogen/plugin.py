"""pluggy hooks of the AutoGen plugin; they drive `AutoGenInstrumentor`."""

from __future__ import annotations

import logging
from typing import Any

from agl_core.hookspecs import hookimpl

log = logging.getLogger("agentlightning")

NAME = "autogen"


@hookimpl
def agl_framework_info() -> dict[str, Any]:
    return {"name": NAME, "package": "autogen-agentchat", "versions": ">=0.7,<0.8", "extra": "autogen"}


@hookimpl
def agl_instrument(frameworks: frozenset[str] | None) -> str | None:
    if frameworks is not None and NAME not in frameworks:
        return None
    try:
        from agl_autogen.instrumentor import AutoGenInstrumentor

        AutoGenInstrumentor().instrument(skip_dep_check=True)
    except ImportError:
        if frameworks is not None:
            log.warning("autogen is not installed: pip install 'agentlightning[autogen]'")
        return None
    except Exception:
        log.exception("could not instrument autogen")
        return None
    return NAME


@hookimpl
def agl_uninstrument() -> None:
    try:
        from agl_autogen.instrumentor import AutoGenInstrumentor

        AutoGenInstrumentor().uninstrument()
    except Exception:
        log.exception("could not uninstrument autogen")
