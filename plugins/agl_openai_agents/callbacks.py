"""An Agents SDK `TracingProcessor` that mirrors the SDK's spans as GenAI OpenTelemetry spans.

- agent span → ``invoke_agent {name}`` (each agent of a handoff chain gets its own);
- function span → ``execute_tool {name}`` with arguments and result;
- handoff span → ``handoff {to_agent}``;
- response/generation spans → nothing here. The SDK's models call the ``openai`` client, and the
  openai plugin records each request as the one ``chat`` span. To make it nest, every span opened
  here is made the current OTel context until the SDK ends it (the SDK starts and ends a span in
  the same task), so the client call inside an agent turn sees its ``invoke_agent`` span as parent.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

from agents.tracing import TracingProcessor
from agents.tracing.span_data import AgentSpanData, FunctionSpanData, HandoffSpanData
from opentelemetry import context as otel_context
from opentelemetry import trace

from agl_core.tracing import genai, semconv

log = logging.getLogger("agentlightning")


def _start(tracer: trace.Tracer, data: Any, context: otel_context.Context) -> trace.Span | None:
    if isinstance(data, AgentSpanData):
        return genai.start_agent_span(data.name, context=context, tracer=tracer)
    if isinstance(data, FunctionSpanData):
        return genai.start_tool_span(data.name, context=context, tracer=tracer)
    if isinstance(data, HandoffSpanData):
        attrs = {semconv.AGL_HANDOFF_FROM: data.from_agent or ""}
        return tracer.start_span(semconv.handoff_span_name(None), context=context, attributes=attrs)
    return None


def _end_attributes(data: Any) -> dict[str, Any]:
    if isinstance(data, AgentSpanData):
        attrs: dict[str, Any] = {semconv.AGL_AGENT_TOOLS: list(data.tools or []), semconv.AGL_AGENT_HANDOFFS: list(data.handoffs or [])}
        if data.output_type:
            attrs[semconv.GEN_AI_OUTPUT_TYPE] = "text" if data.output_type == "str" else "json"
            attrs[semconv.AGL_AGENT_OUTPUT_TYPE] = data.output_type
        return attrs
    if isinstance(data, FunctionSpanData):
        attrs = genai.tool_attributes(data.name, arguments=None if data.input is None else str(data.input))
        return attrs | (genai.tool_result_attributes(data.output) if data.output is not None else {})
    if isinstance(data, HandoffSpanData):
        return {semconv.AGL_HANDOFF_TO: data.to_agent or "", semconv.AGL_HANDOFF_FROM: data.from_agent or ""}
    return {}


class AglTracingProcessor(TracingProcessor):  # type: ignore[misc]
    """Registered once; ``enabled`` switches it (the SDK has no public way to remove a processor)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.enabled = False
        self._open: dict[str, tuple[trace.Span, contextvars.Token[otel_context.Context]]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        if not self.enabled:
            return
        try:
            with self._lock:
                parent = self._open.get(span.parent_id) if span.parent_id else None
            ctx = trace.set_span_in_context(parent[0]) if parent else otel_context.get_current()
            otel_span = _start(self.tracer, span.span_data, ctx)
            if otel_span is None:
                return
            token = otel_context.attach(trace.set_span_in_context(otel_span, otel_context.get_current()))
            with self._lock:
                self._open[span.span_id] = (otel_span, token)
        except Exception:
            log.debug("agl_openai_agents: could not open a span", exc_info=True)

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            entry = self._open.pop(span.span_id, None)
        if entry is None:
            return
        otel_span, token = entry
        try:
            otel_context.detach(token)
            data = span.span_data
            otel_span.set_attributes(_end_attributes(data))
            if isinstance(data, HandoffSpanData) and data.to_agent:
                otel_span.update_name(semconv.handoff_span_name(data.to_agent))
            if span.error:
                genai.fail(otel_span, str(span.error.get("message", "")))
        except Exception:
            log.debug("agl_openai_agents: could not describe a span", exc_info=True)
        finally:
            otel_span.end()

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass
