"""OpenTelemetry instrumentor for the OpenAI Agents SDK (entry point ``agl_openai_agents``).

Adds :class:`AglTracingProcessor` with ``agents.add_trace_processor`` (the user's processors,
including the SDK's own exporter, stay). Uninstrumenting switches it off; it stays registered,
as the SDK can only replace the whole processor list. The chat spans come from the openai
plugin, which the pluggy hook turns on alongside (see :mod:`agl_openai_agents.callbacks`).
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from agl_openai_agents.package import _instruments


class OpenAIAgentsInstrumentor(BaseInstrumentor):
    processor: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        import agents

        from agl_openai_agents.callbacks import AglTracingProcessor

        if self.processor is None:
            tracer = trace.get_tracer("agl_openai_agents", tracer_provider=kwargs.get("tracer_provider"))
            self.processor = AglTracingProcessor(tracer)
            agents.add_trace_processor(self.processor)
        self.processor.enabled = True

    def _uninstrument(self, **kwargs: Any) -> None:
        if self.processor is not None:
            self.processor.enabled = False
