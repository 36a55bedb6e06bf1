"""OpenTelemetry instrumentor for Microsoft Agent Framework (agent-framework-core 1.x).

Agent Framework traces itself (``agent_framework.observability``): ``invoke_agent {name}`` per
agent run, ``chat {model}`` per model call with GenAI messages, usage and finish reasons,
``execute_tool {name}`` with arguments and results, and workflow/executor spans, all through the
global TracerProvider. We do not wrap any of that again; instrumenting

* turns its instrumentation on with sensitive-data capture (messages, tool payloads) — unless the
  user called ``disable_instrumentation()``, which we respect;
* adds `AgentFrameworkSpanProcessor` to tag executors and chat spans;
* applies the one-chat-span rule: Agent Framework's chat span is the richest description of the
  request, so the openai plugin's span under it is suppressed (`agl_core.tracing.genai.suppress_llm_spans`
  around ``ChatTelemetryLayer.get_response``). The openai plugin still injects ``traceparent`` /
  ``baggage`` into the HTTP request.

`uninstrument` restores the observability settings found at instrumentation time. Agent
Framework's spans are its own: with its default settings they keep flowing to the global provider.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from agl_agent_framework.package import _instruments
from agl_agent_framework.span_processor import AgentFrameworkSpanProcessor
from agl_core.tracing.genai import suppress_llm_spans

log = logging.getLogger("agentlightning")

_processor = AgentFrameworkSpanProcessor()
_saved: dict[str, Any] = {}


def _suppressing_inner_llm_spans(original: Any, settings: Any) -> Any:
    """``ChatTelemetryLayer.get_response`` that runs the model call with inner LLM spans suppressed."""

    @functools.wraps(original)
    def get_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not settings.ENABLED:  # no Agent Framework chat span: the openai plugin's span is the one
            return original(self, *args, **kwargs)
        if kwargs.get("stream"):
            with suppress_llm_spans():
                stream = original(self, *args, **kwargs)
            return stream.with_pull_context_manager(suppress_llm_spans)

        async def respond() -> Any:
            with suppress_llm_spans():
                return await original(self, *args, **kwargs)

        return respond()

    return get_response


class AgentFrameworkInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from agent_framework import (
            observability,  # ImportError: not installed, the only error we raise
        )

        try:
            self._install(observability, kwargs.get("tracer_provider"))
        except Exception:
            log.exception("agl_agent_framework: instrumentation failed; Agent Framework runs untouched")
            self._restore()

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            self._restore()
        except Exception:
            log.exception("agl_agent_framework: uninstrumentation failed")

    @staticmethod
    def _install(observability: Any, tracer_provider: Any) -> None:
        _processor.attach(tracer_provider or trace.get_tracer_provider())

        settings = observability.OBSERVABILITY_SETTINGS
        if not _saved:
            _saved["settings"] = (settings.enable_instrumentation, settings.enable_sensitive_data)
            _saved["get_response"] = observability.ChatTelemetryLayer.get_response
        if settings.is_user_disabled:
            log.info("agl_agent_framework: Agent Framework telemetry was disabled by the user; left off")
        else:
            observability.enable_instrumentation(enable_sensitive_data=True)
        observability.ChatTelemetryLayer.get_response = _suppressing_inner_llm_spans(_saved["get_response"], settings)

    @staticmethod
    def _restore() -> None:
        _processor.enabled = False
        if not _saved:
            return
        from agent_framework import observability

        observability.ChatTelemetryLayer.get_response = _saved.pop("get_response")
        enabled, sensitive = _saved.pop("settings")
        settings = observability.OBSERVABILITY_SETTINGS
        if not settings.is_user_disabled:
            settings.enable_instrumentation = enabled
            settings.enable_sensitive_data = sensitive
