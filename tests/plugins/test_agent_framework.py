"""Microsoft Agent Framework plugin: native GenAI spans enabled and tagged, one chat span per request."""

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

pytest.importorskip("agent_framework")
from agent_framework import (  # noqa: E402
    Agent,
    Executor,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    observability,  # noqa: E402
    tool,
)
from agent_framework.openai import OpenAIChatCompletionClient  # noqa: E402

MODEL = "gpt-4o-mini"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _client(server: ScriptedOpenAI) -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(model=MODEL, base_url=server.base_url, api_key="test")


def _calculator(server: ScriptedOpenAI) -> Agent:
    return Agent(client=_client(server), name="calculator", instructions="You add numbers.", tools=[add])


async def test_tool_agent_run_is_traced(store):
    assert set(instrument(["openai", "agent_framework"])) == {"openai", "agent_framework"}
    with ScriptedOpenAI(calculator_responder) as server:
        async with agl.tracer.trace("calc-run", "what is 2+3?") as run:
            result = await _calculator(server).run("what is 2+3?")
    assert result.text == "2 + 3 = 5"
    spans = store.query_spans(run.rollout.rollout_id)
    assert all(s.rollout_id == run.rollout.rollout_id for s in spans)

    agent = next(s for s in spans if s.name == "invoke_agent calculator")
    assert agent.attributes[semconv.GEN_AI_AGENT_NAME] == "calculator"

    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2  # the openai plugin's span is suppressed
    assert all(c.name == f"chat {MODEL}" and c.parent_id == agent.span_id for c in chats)
    first, second = chats
    assert parse_json_attr(first.attributes[semconv.GEN_AI_INPUT_MESSAGES])[-1]["parts"][0]["content"] == "what is 2+3?"
    assert "You add numbers." in first.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]
    call = parse_json_attr(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]
    assert call["type"] == "tool_call" and call["name"] == "add"
    assert first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0 and first.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert "add" in first.attributes[semconv.GEN_AI_TOOL_DEFINITIONS]  # copied from the agent span
    assert parse_json_attr(second.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "2 + 3 = 5"

    tool_span = next(s for s in spans if s.name == "execute_tool add")
    assert tool_span.parent_id == agent.span_id
    assert_add_tool_call(tool_span, call["id"])

    for request in server.chat_requests():
        assert request["headers"]["traceparent"].split("-")[1] == agent.trace_id
        assert run.rollout.rollout_id in request["headers"]["baggage"]


async def test_streaming_run_has_one_chat_span_per_request(store):
    instrument(["openai", "agent_framework"])
    with ScriptedOpenAI(calculator_responder) as server:
        async with agl.tracer.trace("calc-stream") as run:
            updates = [u async for u in _calculator(server).run("what is 2+3?", stream=True)]
    assert "".join(u.text for u in updates).strip() == "2 + 3 = 5"
    chats = by_op(store.query_spans(run.rollout.rollout_id), semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2


class Shout(Executor):
    """A plain (non-agent) workflow step."""

    @handler
    async def shout(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text.upper())


async def test_selective_optimization_of_the_writer(store):
    instrument(["openai", "agent_framework"])
    with ScriptedOpenAI(team_responder) as server:
        writer = Agent(client=_client(server), name="writer", instructions="You are the writer.")
        reviewer = Agent(client=_client(server), name="reviewer", instructions="You are the reviewer.")
        shout = Shout(id="shout")
        workflow = WorkflowBuilder(start_executor=shout).add_edge(shout, writer).add_edge(writer, reviewer).build()
        async with agl.tracer.trace("team", "write a haiku") as run:
            await workflow.run("write a haiku")
    spans = store.query_spans(run.rollout.rollout_id)
    names = {s.attributes.get(semconv.GEN_AI_AGENT_NAME) for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "invoke_agent"}
    assert {"writer", "reviewer", "shout"} <= names  # the function executor became an agent span
    assert any(s.name == "invoke_agent shout" for s in spans)

    writer_requests = [r for r in server.chat_requests() if "writer" in r["body"]["messages"][0]["content"]]
    assert len(writer_requests) == 1 and len(server.chat_requests()) == 2
    assert writer_requests[0]["body"]["messages"][-1]["content"] == "WRITE A HAIKU"
    triplets = spans_to_triplets(spans, agents=["writer"])
    assert len(triplets) == 1
    assert triplets[0].agent_name == "writer"
    assert triplets[0].response_messages[-1]["content"] == "DRAFT: a haiku about tests"
    assert len(spans_to_triplets(spans)) == 2


async def test_uninstrument_restores_agent_framework(store):
    from agent_framework.observability import ChatTelemetryLayer

    settings = observability.OBSERVABILITY_SETTINGS
    before = (ChatTelemetryLayer.get_response, settings.enable_instrumentation, settings.enable_sensitive_data)
    instrument(["openai", "agent_framework"])
    assert settings.enable_sensitive_data is True
    uninstrument()
    uninstrument()  # idempotent
    assert (ChatTelemetryLayer.get_response, settings.enable_instrumentation, settings.enable_sensitive_data) == before
    with ScriptedOpenAI(calculator_responder) as server:
        async with agl.tracer.trace("calc-run") as run:
            result = await _calculator(server).run("what is 2+3?")
    assert result.text == "2 + 3 = 5"
    assert "traceparent" not in server.chat_requests()[0]["headers"]
    spans = store.query_spans(run.rollout.rollout_id)
    # Agent Framework's own spans still exist (its default), but nothing of ours: no messages, no tags
    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == 2
    assert not any(semconv.GEN_AI_INPUT_MESSAGES in c.attributes or semconv.GEN_AI_TOOL_DEFINITIONS in c.attributes for c in chats)


async def test_instrumentation_never_raises_into_user_code(store, monkeypatch):
    from agent_framework.observability import ChatTelemetryLayer

    import agl_agent_framework.instrumentor as instrumentor

    original = ChatTelemetryLayer.get_response
    instrumentor.AgentFrameworkInstrumentor().instrument(skip_dep_check=True, tracer_provider=BrokenProvider())
    assert ChatTelemetryLayer.get_response is original
    instrumentor.AgentFrameworkInstrumentor().uninstrument()

    # a span processor failure does not reach the agent
    instrument(["openai", "agent_framework"])
    monkeypatch.setattr(instrumentor._processor, "_tag", broken)
    with ScriptedOpenAI(calculator_responder) as server:
        result = await _calculator(server).run("what is 2+3?")
    assert result.text == "2 + 3 = 5"
