"""Normalises the GenAI spans AutoGen emits natively so they read like every other plugin's."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context

from agl_core.tracing import semconv
from agl_core.tracing.processors import TaggingSpanProcessor

#: Instrumentation scope of autogen-core's `invoke_agent` / `execute_tool` / `create_agent` spans.
AUTOGEN_GENAI_SCOPE = "autogen-core"


class AutoGenSpanProcessor(TaggingSpanProcessor):
    """On start of an autogen-core GenAI span: fill the current GenAI attribute names.

    autogen-core 0.7 writes the deprecated ``gen_ai.system``; the contract reads
    ``gen_ai.provider.name``. Agent and tool names are also recovered from the span name
    when an attribute is missing.
    """

    scope = AUTOGEN_GENAI_SCOPE
    plugin = "agl_autogen"

    def _tag(self, span: Any, parent_context: otel_context.Context | None) -> None:
        attrs = span.attributes or {}
        if semconv.GEN_AI_SYSTEM_DEPRECATED in attrs and semconv.GEN_AI_PROVIDER_NAME not in attrs:
            span.set_attribute(semconv.GEN_AI_PROVIDER_NAME, attrs[semconv.GEN_AI_SYSTEM_DEPRECATED])
        op, _, subject = span.name.partition(" ")
        if op == semconv.OP_INVOKE_AGENT and subject and semconv.GEN_AI_AGENT_NAME not in attrs:
            span.set_attribute(semconv.GEN_AI_AGENT_NAME, subject)
        if op == semconv.OP_EXECUTE_TOOL and subject and semconv.GEN_AI_TOOL_NAME not in attrs:
            span.set_attribute(semconv.GEN_AI_TOOL_NAME, subject)
