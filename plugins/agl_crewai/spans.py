"""What each wrapped CrewAI call becomes: the span it opens (with `genai`), and what its result adds."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from agl_core.tracing import genai, semconv
from agl_core.tracing.convert import parse_json_attr

Attributes = dict[str, Any]


def _agent(tracer: trace.Tracer, name: str, obj: Any, description: Any = None, **extra: Any) -> trace.Span:
    """``invoke_agent {name}`` for a crew, task or agent, with its id and description if it has them."""
    attrs: Attributes = {semconv.GEN_AI_AGENT_ID: str(obj.id) if getattr(obj, "id", None) else None}
    if description:
        attrs[semconv.GEN_AI_AGENT_DESCRIPTION] = str(description)
    return genai.start_agent_span(name, attributes={**attrs, **extra}, tracer=tracer)


def crew_span(tracer: trace.Tracer, crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Span:
    return _agent(tracer, str(getattr(crew, "name", None) or "crew"), crew)


def task_span(tracer: trace.Tracer, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Span:
    """A task is a unit of work of the crew: an ``invoke_agent`` named after the task."""
    return _agent(tracer, str(getattr(task, "name", None) or "task"), task, getattr(task, "description", None))


def agent_span(tracer: trace.Tracer, agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Span:
    """A CrewAI agent is known by its role."""
    model = getattr(getattr(agent, "llm", None), "model", None)
    extra = {semconv.GEN_AI_REQUEST_MODEL: model} if isinstance(model, str) else {}
    role = str(getattr(agent, "role", None) or "agent")
    return _agent(tracer, role, agent, getattr(agent, "goal", None), **extra)


def native_tool_call_span(tracer: trace.Tracer, executor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Span:
    from crewai.utilities.agent_utils import extract_tool_call_info

    tool_call = args[0] if args else kwargs.get("tool_call")
    info = extract_tool_call_info(tool_call)
    if not info:
        return genai.start_tool_span(None, tracer=tracer)
    call_id, name, arguments = info
    return genai.start_tool_span(name, arguments=parse_json_attr(arguments), call_id=str(call_id), tracer=tracer)


def native_tool_call_result(result: Any) -> Attributes:
    if isinstance(result, dict) and "result" in result:
        return genai.tool_result_attributes(str(result["result"]))
    return {}
