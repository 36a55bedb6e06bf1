"""AutoGen agentchat 0.7 plugin: native spans kept and normalised, chat spans from the openai client."""

from __future__ import annotations

import pytest

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import spans_to_triplets
from tests.fixtures.scripted_openai import ScriptedOpenAI
from tests.plugins.helpers import (
    BrokenProvider,
    assert_add_tool_call,
    broken,
    by_op,
    calculator_responder,
    team_responder,
)

autogen_agentchat = pytest.importorskip("autogen_agentchat")
from autogen_agentchat.agents import AssistantAgent  # noqa: E402
from autogen_agentchat.conditions import MaxMessageTermination  # noqa: E402
from autogen_agentchat.teams import RoundRobinGroupChat  # noqa: E402
from autogen_core.tools import BaseTool  # noqa: E402
from autogen_ext.models.openai import OpenAIChatCompletionClient  # noqa: E402

MODEL = "gpt-4o-mini"
pytestmark = pytest.mark.filterwarnings("ignore:Resolved model mismatch")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _client(server: ScriptedOpenAI) -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(model=MODEL, base_url=server.base_url, api_key="test")


def _calculator(server: ScriptedOpenAI) -> AssistantAgent:
    return AssistantAgent("calculator", model_client=_client(server), tools=[add], reflect_on_tool_use=True)


def _ancestor_agent(span, by_id) -> str | None:
    parent = by_id.get(span.parent_id or "")
    while parent is not None:
        if parent.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT:
            return parent.attributes.get(semconv.GEN_AI_AGENT_NAME)
        parent = by_id.get(parent.parent_id or "")
    return None


async def test_tool_agent_run_is_traced(store):
    assert set(instrument(["openai", "autogen"])) == {"openai", "autogen"}
    with ScriptedOpenAI(calculator_responder) as server:
        async with agl.tracer.trace("calc-run", "what is 2+3?") as run:
            result = await _calculator(server).run(task="what is 2+3?")
    assert result.messages[-1].content == "2 + 3 = 5"
    spans = store.query_spans(run.rollout.rollout_id)
    by_id = {s.span_id: s for s in spans}

    agents = [s for s in spans if s.name == "invoke_agent calculator"]
    assert len(agents) == 1
    agent = agents[0]
    assert agent.attributes[semconv.GEN_AI_AGENT_NAME] == "calculator"
    assert agent.attributes[semconv.GEN_AI_PROVIDER_NAME] == "autogen"

    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    assert all(c.name == f"chat {MODEL}" for c in chats)
    assert all(_ancestor_agent(c, by_id) == "calculator" for c in chats)
    first, second = chats
    inputs = parse_json_attr(first.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert inputs[-1]["parts"][0]["content"] == "what is 2+3?"
    out = parse_json_attr(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    call = next(p for p in out[0]["parts"] if p["type"] == "tool_call")
    assert call["name"] == "add" and call["arguments"] == {"a": 2, "b": 3}
    assert first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert first.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert "add" in first.attributes[semconv.GEN_AI_TOOL_DEFINITIONS]
    final = parse_json_attr(second.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert final[0]["parts"][0]["content"] == "2 + 3 = 5"

    tools = [s for s in spans if s.name == "execute_tool add"]
    assert len(tools) == 1
    tool = tools[0]
    assert _ancestor_agent(tool, by_id) == "calculator"
    assert tool.attributes[semconv.GEN_AI_TOOL_NAME] == "add"
    assert_add_tool_call(tool, call["id"])
    assert all(s.rollout_id == run.rollout.rollout_id for s in spans)

    # the LLM requests carried the agent's trace and rollout ids
    for request in server.chat_requests():
        assert request["headers"]["traceparent"].split("-")[1] == agent.trace_id
        assert run.rollout.rollout_id in request["headers"]["baggage"]


async def test_selective_optimization_of_the_writer(store):
    instrument(["openai", "autogen"])
    with ScriptedOpenAI(team_responder) as server:
        client = _client(server)
        writer = AssistantAgent("writer", model_client=client, system_message="You are the writer.")
        reviewer = AssistantAgent("reviewer", model_client=client, system_message="You are the reviewer.")
        team = RoundRobinGroupChat([writer, reviewer], termination_condition=MaxMessageTermination(5))
        async with agl.tracer.trace("team", "write a haiku") as run:
            result = await team.run(task="write a haiku")
    assert [m.source for m in result.messages] == ["user", "writer", "reviewer", "writer", "reviewer"]
    spans = store.query_spans(run.rollout.rollout_id)
    assert {s.attributes.get(semconv.GEN_AI_AGENT_NAME) for s in spans if s.name.startswith("invoke_agent ")} >= {
        "writer",
        "reviewer",
    }
    writer_requests = [r for r in server.chat_requests() if "writer" in r["body"]["messages"][0]["content"]]
    assert len(server.chat_requests()) == 4 and len(writer_requests) == 2

    triplets = spans_to_triplets(spans, agents=["writer"])
    assert len(triplets) == len(writer_requests)
    assert all(t.agent_name == "writer" for t in triplets)
    assert all("DRAFT" in t.response_messages[-1]["content"] for t in triplets)
    assert len(spans_to_triplets(spans)) == 4


async def test_uninstrument_restores_autogen(store):
    original_run_json = BaseTool.run_json
    instrument(["openai", "autogen"])
    assert BaseTool.run_json is not original_run_json
    uninstrument()
    uninstrument()  # idempotent
    assert BaseTool.run_json is original_run_json
    with ScriptedOpenAI(calculator_responder) as server:
        async with agl.tracer.trace("calc-run") as run:
            result = await _calculator(server).run(task="what is 2+3?")
    assert result.messages[-1].content == "2 + 3 = 5"
    assert len(server.chat_requests()) == 2
    assert "traceparent" not in server.chat_requests()[0]["headers"]
    spans = store.query_spans(run.rollout.rollout_id)
    assert not [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    # AutoGen's own spans still flow to the global provider, but carry nothing of ours
    tool = next(s for s in spans if s.name == "execute_tool add")
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in tool.attributes
    assert all(semconv.GEN_AI_PROVIDER_NAME not in s.attributes for s in spans if s.name.startswith("invoke_agent calc"))


async def test_instrumentation_never_raises_into_user_code(store, monkeypatch):
    import agl_autogen.instrumentor as instrumentor

    # a failure while instrumenting is logged, not raised, and leaves AutoGen untouched
    original_run_json = BaseTool.run_json
    instrumentor.AutoGenInstrumentor().instrument(skip_dep_check=True, tracer_provider=BrokenProvider())
    assert BaseTool.run_json is original_run_json
    instrumentor.AutoGenInstrumentor().uninstrument()

    # a failure while recording a tool's payload does not reach the tool's caller
    instrument(["openai", "autogen"])
    monkeypatch.setattr(instrumentor, "json_attr", broken)
    with ScriptedOpenAI(calculator_responder) as server:
        result = await _calculator(server).run(task="what is 2+3?")
    assert result.messages[-1].content == "2 + 3 = 5"
