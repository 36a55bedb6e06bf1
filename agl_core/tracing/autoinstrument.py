"""Tracing with no extra line: the first trace instruments the frameworks that are installed.

The tracer, the runner and ``agl.emit_*`` outside a rollout call :func:`ensure_instrumented`
before they record. The first call hands over to the instrumenter the plugin layer provides
(:func:`set_instrumenter`), once per process. It does nothing when the user already chose
(``agl.instrument(...)`` / ``agl.uninstrument()`` call :func:`mark_chosen`) or set
``AGL_AUTO_INSTRUMENT=false``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

log = logging.getLogger("agentlightning")

ENV = "AGL_AUTO_INSTRUMENT"
_OFF = frozenset({"0", "false", "no", "off"})

_lock = threading.Lock()
_instrumenter: Callable[[], object] | None = None
_settled = False


def set_instrumenter(instrumenter: Callable[[], object]) -> None:
    """What the first trace runs (the plugin layer's automatic instrumentation)."""
    global _instrumenter
    _instrumenter = instrumenter


def mark_chosen() -> None:
    """The user instrumented (or uninstrumented) by hand: automatic instrumentation stays off."""
    global _settled
    with _lock:
        _settled = True


def enabled() -> bool:
    return os.environ.get(ENV, "true").strip().lower() not in _OFF


def ensure_instrumented() -> None:
    """Instrument the installed frameworks, the first time only (see the module docstring)."""
    global _settled
    if _settled:
        return
    with _lock:
        if _settled or _instrumenter is None or not enabled():
            return
        _settled = True
        instrumenter = _instrumenter
    try:
        instrumenter()
    except Exception:  # tracing must never break the agent
        log.exception("automatic instrumentation failed; call agl.instrument() to see why")
