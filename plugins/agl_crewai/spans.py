"""What each wrapped CrewAI call becomes as a span: its name and attributes, before and after."""

from __future__ import annotations

from typing import Any

from agl_core.tracing import semconv
from agl_core.tracing.convert import json_attr, parse_json_attr

Attributes = dict[str, Any]
#: GenAI convention attribute that agl_core.tracing.semconv does not name yet
GEN_AI_AGENT_DESCRIPTION = "gen_ai.agent.description"


def _invoke_agent(name: str, obj: Any) -> Attributes:
    """``invoke_agent`` attributes for a crew, task or agent called `name`, with its id if it has one."""
    attrs: Attributes = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: name}
    if getattr(obj, "id", None):
        attrs[semconv.GEN_AI_AGENT_ID] = str(obj.id)
    return attrs


def crew_span(crew: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Attributes]:
    name = str(getattr(crew, "name", None) or "crew")
    return semconv.agent_span_name(name), _invoke_agent(name, crew)


def task_span(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Attributes]:
    """A task is a unit of work of the crew: an ``invoke_agent`` named after the task."""
    name = str(getattr(task, "name", None) or "task")
    attrs = _invoke_agent(name, task)
    if getattr(task, "description", None):
        attrs[GEN_AI_AGENT_DESCRIPTION] = str(task.description)
    return semconv.agent_span_name(name), attrs


def agent_span(agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Attributes]:
    """A CrewAI agent is known by its role."""
    role = str(getattr(agent, "role", None) or "agent")
    attrs = _invoke_agent(role, agent)
    if getattr(agent, "goal", None):
        attrs[GEN_AI_AGENT_DESCRIPTION] = str(agent.goal)
    model = getattr(getattr(agent, "llm", None), "model", None)
    if isinstance(model, str):
        attrs[semconv.GEN_AI_REQUEST_MODEL] = model
    return semconv.agent_span_name(role), attrs


def native_tool_call_span(executor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Attributes]:
    from crewai.utilities.agent_utils import extract_tool_call_info

    tool_call = args[0] if args else kwargs.get("tool_call")
    info = extract_tool_call_info(tool_call)
    if not info:
        return semconv.tool_span_name(None), {semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL}
    call_id, name, arguments = info
    return semconv.tool_span_name(name), {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: name,
        semconv.GEN_AI_TOOL_CALL_ID: str(call_id),
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json_attr(parse_json_attr(arguments)),
    }


def native_tool_call_result(result: Any) -> Attributes:
    if isinstance(result, dict) and "result" in result:
        return {semconv.GEN_AI_TOOL_CALL_RESULT: str(result["result"])}
    return {}
