"""Tags Agent Framework's native GenAI spans so they meet the span contract."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from agl_core.tracing import genai, semconv
from agl_core.tracing.processors import TaggingSpanProcessor

#: Instrumentation scope of every span agent_framework.observability emits.
AGENT_FRAMEWORK_SCOPE = "agent_framework"
#: Executors that wrap an agent: the agent's own ``invoke_agent`` span sits right under them.
_AGENT_EXECUTORS = frozenset({"AgentExecutor"})


class AgentFrameworkSpanProcessor(TaggingSpanProcessor):
    """On start of an Agent Framework span:

    * a workflow executor that is not an agent wrapper (function and custom executors) becomes
      ``invoke_agent {executor id}``, so every unit of work in a workflow is attributable;
    * a ``chat`` span gets the tool definitions of the agent that makes the call (Agent
      Framework records them on the ``invoke_agent`` span only).
    """

    scope = AGENT_FRAMEWORK_SCOPE
    plugin = "agl_agent_framework"

    def _tag(self, span: Any, parent_context: otel_context.Context | None) -> None:
        attrs = span.attributes or {}
        if span.name.startswith(semconv.AF_EXECUTOR_SPAN) and attrs.get(semconv.AF_EXECUTOR_TYPE) not in _AGENT_EXECUTORS:
            executor_id = str(attrs.get(semconv.AF_EXECUTOR_ID) or "")
            if executor_id:
                span.update_name(semconv.agent_span_name(executor_id))
                span.set_attributes(genai.agent_attributes(executor_id))
        elif span.name.split(" ", 1)[0] == semconv.OP_CHAT:  # attributes are set only after start
            parent = trace.get_current_span(parent_context)
            tools = (getattr(parent, "attributes", None) or {}).get(semconv.GEN_AI_TOOL_DEFINITIONS)
            if tools:
                span.set_attribute(semconv.GEN_AI_TOOL_DEFINITIONS, tools)
