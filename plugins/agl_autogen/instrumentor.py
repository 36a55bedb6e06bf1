"""OpenTelemetry instrumentor for AutoGen agentchat 0.7.

AutoGen already traces itself: autogen-core emits ``invoke_agent {name}`` for every agent run
(each member of a team included), ``execute_tool {name}`` for every tool call and its runtime's
messaging spans, all through the global TracerProvider — the one `agl_core.runtime.telemetry.configure()`
equips with the store exporter. We keep those spans and add only what they lack:

* `AutoGenSpanProcessor` normalises their attributes;
* tool arguments and results are recorded on the ``execute_tool`` span (AutoGen logs them but
  does not put them on the span);
* ``chat`` spans come from the openai plugin (AutoGen's model clients call the openai SDK), so
  instrument both: ``agl.instrument(["openai", "autogen"])`` (or ``agl.instrument()``). AutoGen
  emits no chat span of its own, so there is exactly one per LLM request.

AutoGen's native spans are AutoGen's: they keep flowing to the global provider after
`uninstrument`, without our normalisation and tool payloads.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from agl_autogen.package import _instruments
from agl_autogen.span_processor import AutoGenSpanProcessor
from agl_core.tracing import genai, semconv
from agl_core.tracing.convert import json_attr

log = logging.getLogger("agentlightning")

_processor = AutoGenSpanProcessor()
#: tool classes whose ``run`` we wrapped -> their original ``run``
_wrapped_runs: dict[type, Any] = {}
_original_run_json: Any = None


def _record_tool_io(tool: Any, args: Any, result: Any) -> None:
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "name", None) != semconv.tool_span_name(tool.name):
        return
    try:
        arguments = args.model_dump(mode="json") if hasattr(args, "model_dump") else args
        span.set_attributes(genai.tool_attributes(tool.name, arguments=json_attr(arguments)))
        span.set_attributes(genai.tool_result_attributes(tool.return_value_as_string(result)))
    except Exception:  # a payload we cannot serialise must not break the tool
        log.debug("could not record tool payload of %s", tool.name, exc_info=True)


def _wrap_run(cls: type) -> None:
    """Wrap ``cls.run`` (called inside autogen's execute_tool span) to record its input/output."""
    original = cls.__dict__.get("run")
    if original is None or cls in _wrapped_runs:
        return

    @functools.wraps(original)
    async def run(self: Any, args: Any, cancellation_token: Any) -> Any:
        result = await original(self, args, cancellation_token)
        _record_tool_io(self, args, result)
        return result

    _wrapped_runs[cls] = original
    cls.run = run  # type: ignore[attr-defined]


def _owner_of_run(cls: type) -> type | None:
    return next((c for c in cls.__mro__ if "run" in c.__dict__), None)


class AutoGenInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from autogen_core.tools import (
            BaseTool,  # ImportError: not installed, the only error we raise
        )

        try:
            self._install(BaseTool, kwargs.get("tracer_provider"))
        except Exception:
            log.exception("agl_autogen: instrumentation failed; AutoGen runs untouched")
            self._restore()

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            self._restore()
        except Exception:
            log.exception("agl_autogen: uninstrumentation failed")

    @staticmethod
    def _install(base_tool: Any, tracer_provider: Any) -> None:
        global _original_run_json
        _processor.attach(tracer_provider or trace.get_tracer_provider())

        if _original_run_json is None:
            original = base_tool.run_json
            _original_run_json = original

            @functools.wraps(original)
            async def run_json(self: Any, args: Any, cancellation_token: Any, call_id: str | None = None) -> Any:
                owner = _owner_of_run(type(self))
                if owner is not None:
                    _wrap_run(owner)
                return await original(self, args, cancellation_token, call_id)

            base_tool.run_json = run_json  # type: ignore[attr-defined]

    @staticmethod
    def _restore() -> None:
        global _original_run_json
        _processor.enabled = False
        if _original_run_json is not None:
            from autogen_core.tools import BaseTool

            BaseTool.run_json = _original_run_json  # type: ignore[method-assign]
            _original_run_json = None
        while _wrapped_runs:
            cls, original = _wrapped_runs.popitem()
            cls.run = original  # type: ignore[attr-defined]
