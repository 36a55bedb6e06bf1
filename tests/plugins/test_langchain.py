"""LangChain/LangGraph plugin: agent, chat and tool spans parented by run ids, one chat span per
request with the openai plugin on too, structured output, streaming, selective attribution."""

from __future__ import annotations

import json
from typing import TypedDict

import pydantic
import pytest

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import spans_to_triplets
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call
from tests.plugins.helpers import assert_add_tool_call, by_op

pytest.importorskip("langgraph")
from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.prebuilt import create_react_agent  # noqa: E402

MODEL = "gpt-4o-mini"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def responder(body: dict) -> object:
    messages = body["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    if messages[-1]["role"] == "tool":
        return f"The sum is {messages[-1]['content']}."
    if "reviewer" in system:
        return "Looks good."
    if body.get("tools") and body.get("tool_choice") is None:
        return tool_call("add", a=2, b=3)
    if body.get("response_format") or body.get("tool_choice"):
        return json.dumps({"total": 5})
    return "A draft."


@pytest.fixture()
def store(store):
    assert sorted(instrument(["openai", "langchain"])) == ["langchain", "openai"]
    return store


@pytest.fixture()
def server():
    with ScriptedOpenAI(responder) as server:
        yield server


def llm(server: ScriptedOpenAI, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=server.base_url, api_key="k", max_retries=0, **kwargs)


def test_react_agent_spans_parents_messages_usage_and_headers(store, server):
    agent = create_react_agent(llm(server), [add], name="calc")
    with agl.tracer.trace("session") as run:
        result = agent.invoke({"messages": [("user", "2+3?")]})
    assert result["messages"][-1].content == "The sum is 5."
    spans = store.query_spans(run.rollout.rollout_id)
    root = next(s for s in spans if s.name == "invoke_agent session")
    (calc,) = [s for s in by_op(spans, semconv.OP_INVOKE_AGENT) if s.name == "invoke_agent calc"]
    assert calc.parent_id == root.span_id and calc.attributes[semconv.GEN_AI_AGENT_NAME] == "calc"
    # the graph's own nodes ("agent", "tools") are steps of the agent, not agents
    assert {s.attributes[semconv.GEN_AI_AGENT_NAME] for s in by_op(spans, semconv.OP_INVOKE_AGENT)} == {"session", "calc"}
    chats = by_op(spans, semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    for chat in chats:
        assert chat.name == f"chat {MODEL}" and chat.parent_id == calc.span_id
        assert chat.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0 and chat.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert parse_json_attr(chat.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])[0]["function"]["name"] == "add"
    assert parse_json_attr(chats[0].attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [{"role": "user", "parts": [{"type": "text", "content": "2+3?"}]}]
    call = parse_json_attr(chats[0].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]
    assert call["type"] == "tool_call" and call["arguments"] == {"a": 2, "b": 3}
    assert list(chats[0].attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert parse_json_attr(chats[1].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "The sum is 5."}]
    (tool_span,) = by_op(spans, semconv.OP_EXECUTE_TOOL)
    assert tool_span.name == "execute_tool add" and tool_span.parent_id == calc.span_id
    assert_add_tool_call(tool_span, call["id"])
    # the request carries the LangChain chat span (the openai layer below stayed quiet)
    for request, chat in zip(server.chat_requests(), chats):
        assert request["headers"]["traceparent"].split("-")[1:3] == [chat.trace_id, chat.span_id]
        assert f"agl.rollout.id={run.rollout.rollout_id}" in request["headers"]["baggage"]


async def test_async_streaming_with_usage(store, server):
    model = llm(server, stream_usage=True)
    async with agl.tracer.trace("streamer") as run:
        chunks = [c async for c in model.astream([SystemMessage("be brief"), HumanMessage("hello")])]
        again = await model.ainvoke("hi")
    text = "".join(c.content for c in chunks)
    assert text.strip() == again.content == "A draft."
    chats = by_op(store.query_spans(run.rollout.rollout_id), semconv.OP_CHAT)
    assert len(chats) == len(server.chat_requests()) == 2
    streamed = chats[0]
    assert parse_json_attr(streamed.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"].strip() == "A draft."
    assert streamed.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert parse_json_attr(streamed.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "be brief"}]


class Sum(pydantic.BaseModel):
    total: int


def test_with_structured_output_is_captured(store, server):
    with agl.tracer.trace("structured") as run:
        result = llm(server).with_structured_output(Sum).invoke("2+3")
    assert result == Sum(total=5)
    (chat,) = by_op(store.query_spans(run.rollout.rollout_id), semconv.OP_CHAT)
    assert chat.attributes["gen_ai.output.type"] == "json"
    assert "5" in chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
    assert len(server.chat_requests()) == 1


class State(TypedDict):
    messages: list


def test_two_agents_in_a_graph_selective_triplets(store, server):
    """A parent graph: the writer is a react agent used as a node, the reviewer a plain node."""
    writer = create_react_agent(llm(server), [add], prompt="You are the writer.", name="writer_agent")
    model = llm(server)

    def reviewer(state: State) -> State:
        reply = model.invoke([SystemMessage("You are the reviewer."), *state["messages"]])
        return {"messages": [*state["messages"], reply]}

    graph = StateGraph(State)
    graph.add_node("writer", writer)
    graph.add_node("reviewer", reviewer)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", "reviewer")
    graph.add_edge("reviewer", END)
    with agl.tracer.trace("team") as run:
        out = graph.compile().invoke({"messages": [HumanMessage("2+3?")]})
        agl.emit_reward(1.0)
    assert out["messages"][-1].content == "Looks good."
    spans = store.query_spans(run.rollout.rollout_id)
    assert {s.attributes[semconv.GEN_AI_AGENT_NAME] for s in by_op(spans, semconv.OP_INVOKE_AGENT)} == {"team", "writer", "reviewer"}
    assert len(by_op(spans, semconv.OP_CHAT)) == len(server.chat_requests()) == 3
    writer_triplets = spans_to_triplets(spans, agents=["writer"])
    assert [t.agent_name for t in writer_triplets] == ["writer", "writer"]
    assert all("reviewer" not in json.dumps(t.prompt_messages) for t in writer_triplets)
    assert [t.agent_name for t in spans_to_triplets(spans, agents=["reviewer"])] == ["reviewer"]


def test_uninstrument_restores_behaviour_and_emits_nothing(store, server):
    from langchain_core.tracers import context as lc_context

    agent = create_react_agent(llm(server), [add], name="calc")
    with agl.tracer.trace("on"):
        traced = agent.invoke({"messages": [("user", "2+3?")]})
    hooks = len(lc_context._configure_hooks)
    uninstrument()
    uninstrument()
    assert len(lc_context._configure_hooks) == hooks - 1
    before = len(server.chat_requests())
    with agl.tracer.trace("off") as run:
        bare = agent.invoke({"messages": [("user", "2+3?")]})
    assert bare["messages"][-1].content == traced["messages"][-1].content == "The sum is 5."
    assert [s.name for s in store.query_spans(run.rollout.rollout_id)] == ["invoke_agent off"]
    assert all("traceparent" not in r["headers"] for r in server.chat_requests()[before:])


def test_handler_failures_never_reach_user_code(store, server, monkeypatch):
    from agl_langchain import callbacks

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(callbacks, "chat_request_attributes", broken)
    monkeypatch.setattr(callbacks, "_response_attributes", broken)
    monkeypatch.setattr(callbacks, "json_attr", broken)
    agent = create_react_agent(llm(server), [add], name="calc")
    with agl.tracer.trace("robust") as run:
        assert agent.invoke({"messages": [("user", "2+3?")]})["messages"][-1].content == "The sum is 5."
    # no context leaked: a span opened afterwards is a child of nothing of ours
    spans = store.query_spans(run.rollout.rollout_id)
    assert "invoke_agent calc" in [s.name for s in spans]
