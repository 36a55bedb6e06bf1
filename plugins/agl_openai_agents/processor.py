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

import logging
import threading
from typing import Any

from agents.tracing import TracingProcessor
from agents.tracing.span_data import AgentSpanData, FunctionSpanData, HandoffSpanData
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr

log = logging.getLogger("agentlightning")

HANDOFF_FROM = "agl.handoff.from_agent"
HANDOFF_TO = "agl.handoff.to_agent"


def _start_attributes(data: Any) -> tuple[str, dict[str, Any]] | None:
    if isinstance(data, AgentSpanData):
        attrs: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: data.name}
        return semconv.agent_span_name(data.name), attrs
    if isinstance(data, FunctionSpanData):
        attrs = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: data.name}
        return semconv.tool_span_name(data.name), attrs
    if isinstance(data, HandoffSpanData):
        return "handoff", {HANDOFF_FROM: data.from_agent or ""}
    return None


def _end_attributes(data: Any) -> dict[str, Any]:
    if isinstance(data, AgentSpanData):
        attrs = {"agl.agent.tools": list(data.tools or []), "agl.agent.handoffs": list(data.handoffs or [])}
        if data.output_type:
            attrs["gen_ai.output.type"] = "text" if data.output_type == "str" else "json"
            attrs["agl.agent.output_type"] = data.output_type
        return attrs
    if isinstance(data, FunctionSpanData):
        attrs = {}
        if data.input is not None:
            attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = str(data.input)
        if data.output is not None:
            attrs[semconv.GEN_AI_TOOL_CALL_RESULT] = data.output if isinstance(data.output, str) else json_attr(data.output)
        return attrs
    if isinstance(data, HandoffSpanData):
        return {HANDOFF_TO: data.to_agent or "", HANDOFF_FROM: data.from_agent or ""}
    return {}


class AglTracingProcessor(TracingProcessor):  # type: ignore[misc]
    """Registered once; ``enabled`` switches it (the SDK has no public way to remove a processor)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.enabled = False
        self._open: dict[str, tuple[trace.Span, object]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        if not self.enabled:
            return
        try:
            described = _start_attributes(span.span_data)
            if described is None:
                return
            name, attrs = described
            with self._lock:
                parent = self._open.get(span.parent_id) if span.parent_id else None
            ctx = trace.set_span_in_context(parent[0]) if parent else otel_context.get_current()
            otel_span = self.tracer.start_span(name, context=ctx, attributes=attrs)
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
                otel_span.update_name(f"handoff {data.to_agent}")
            if span.error:
                otel_span.set_status(Status(StatusCode.ERROR, str(span.error.get("message", ""))))
        except Exception:
            log.debug("agl_openai_agents: could not describe a span", exc_info=True)
        finally:
            otel_span.end()

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass
