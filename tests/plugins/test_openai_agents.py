"""OpenAI Agents SDK plugin: agent/tool/handoff spans from a trace processor, chat spans from the
openai client nested under the running agent, structured output, selective attribution."""

from __future__ import annotations

import json

import pydantic
import pytest

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import spans_to_triplets
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call
from tests.plugins.helpers import assert_add_tool_call, by_op

agents = pytest.importorskip("agents")
from agents import (  # noqa: E402
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    TracingProcessor,
    function_tool,
)
from openai import AsyncOpenAI  # noqa: E402

MODEL = "gpt-4o-mini"


class Collecting(TracingProcessor):
    """Stands for a user's own processor, which the plugin must keep."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_trace_start(self, trace) -> None: ...
    def on_trace_end(self, trace) -> None: ...
    def on_span_start(self, span) -> None: ...
    def on_span_end(self, span) -> None:
        self.ended.append(span.span_data.type)
    def shutdown(self) -> None: ...
    def force_flush(self) -> None: ...


USER_PROCESSOR = Collecting()
# Only the user's processor: the SDK's default exporter to api.openai.com is not wanted in tests.
agents.set_trace_processors([USER_PROCESSOR])


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Review(pydantic.BaseModel):
    verdict: str
    score: int


def responder(body: dict) -> object:
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    if messages[-1]["role"] == "tool" and "add" in tools:
        return f"The sum is {messages[-1]['content']}."
    if "reviewer" in system:
        return json.dumps({"verdict": "good", "score": 9})
    if "transfer_to_reviewer" in tools:
        return tool_call("transfer_to_reviewer")
    return tool_call("add", a=2, b=3)


@pytest.fixture()
def store(store):
    assert sorted(instrument(["openai_agents"])) == ["openai_agents"]
    return store


@pytest.fixture()
def server():
    with ScriptedOpenAI(responder) as server:
        yield server


def model(server: ScriptedOpenAI) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0))


async def test_tool_agent_spans_nest_with_one_chat_span_per_request(store, server):
    agent = Agent(name="calc", instructions="You add numbers.", tools=[add], model=model(server))
    before = len(USER_PROCESSOR.ended)
    async with agl.tracer.trace("session") as run:
        result = await Runner.run(agent, "2+3?")
    assert result.final_output == "The sum is 5."
    spans = store.query_spans(run.rollout.rollout_id)
    root = next(s for s in spans if s.name == "invoke_agent session")
    (calc,) = [s for s in by_op(spans, semconv.OP_INVOKE_AGENT) if s.name == "invoke_agent calc"]
    assert calc.parent_id == root.span_id and calc.attributes[semconv.GEN_AI_AGENT_NAME] == "calc"
    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    for chat in chats:
        assert chat.name == f"chat {MODEL}" and chat.parent_id == calc.span_id
        assert chat.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert parse_json_attr(chat.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "You add numbers."}]
        assert parse_json_attr(chat.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])[0]["function"]["name"] == "add"
    assert parse_json_attr(chats[1].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "The sum is 5."
    (tool_span,) = by_op(spans, semconv.OP_EXECUTE_TOOL)
    assert tool_span.name == "execute_tool add" and tool_span.parent_id == calc.span_id
    assert_add_tool_call(tool_span, None)  # the SDK's function spans carry no call id
    for request, chat in zip(server.chat_requests(), chats):
        assert request["headers"]["traceparent"].split("-")[1:3] == [chat.trace_id, chat.span_id]
    assert {"agent", "function", "generation"} <= set(USER_PROCESSOR.ended[before:])  # user's processor kept


async def test_handoff_structured_output_and_selective_triplets(store, server):
    reviewer = Agent(name="reviewer", instructions="You are the reviewer.", output_type=Review, model=model(server))
    writer = Agent(name="writer", instructions="You are the writer.", handoffs=[reviewer], model=model(server))
    async with agl.tracer.trace("team") as run:
        result = await Runner.run(writer, "Write and get it reviewed.")
        agl.emit_reward(1.0)
    assert result.final_output == Review(verdict="good", score=9)
    spans = store.query_spans(run.rollout.rollout_id)
    agents_by_name = {s.attributes[semconv.GEN_AI_AGENT_NAME]: s for s in by_op(spans, semconv.OP_INVOKE_AGENT)}
    assert set(agents_by_name) == {"team", "writer", "reviewer"}
    assert agents_by_name["reviewer"].attributes["gen_ai.output.type"] == "json"
    (handoff,) = [s for s in spans if s.name.startswith("handoff")]
    assert handoff.name == "handoff reviewer" and handoff.parent_id == agents_by_name["writer"].span_id
    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    assert [c.parent_id for c in chats] == [agents_by_name["writer"].span_id, agents_by_name["reviewer"].span_id]
    assert json.loads(parse_json_attr(chats[1].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"]) == {"verdict": "good", "score": 9}
    writer_triplets = spans_to_triplets(spans, agents=["writer"])
    assert len(writer_triplets) == 1 and writer_triplets[0].agent_name == "writer"
    assert [t.agent_name for t in spans_to_triplets(spans, agents=["reviewer"])] == ["reviewer"]


async def test_uninstrument_keeps_behaviour_and_emits_nothing(store, server):
    agent = Agent(name="calc", tools=[add], model=model(server))
    uninstrument()
    uninstrument()
    before = len(USER_PROCESSOR.ended)
    async with agl.tracer.trace("off") as run:
        result = await Runner.run(agent, "2+3?")
    assert result.final_output == "The sum is 5."
    assert [s.name for s in store.query_spans(run.rollout.rollout_id)] == ["invoke_agent off"]
    assert all("traceparent" not in r["headers"] for r in server.chat_requests())
    assert "agent" in USER_PROCESSOR.ended[before:]


async def test_processor_failures_never_reach_user_code(store, server, monkeypatch):
    from agl_openai_agents import callbacks

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(callbacks, "_start", broken)
    monkeypatch.setattr(callbacks, "_end_attributes", broken)
    agent = Agent(name="calc", tools=[add], model=model(server))
    async with agl.tracer.trace("robust"):
        assert (await Runner.run(agent, "2+3?")).final_output == "The sum is 5."
