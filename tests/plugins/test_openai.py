"""openai plugin: one chat span per request (sync, async, streaming, Responses, structured output),
trace headers on the wire, selective attribution, and a clean uninstrument."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
import wrapt

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import spans_to_triplets
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call

MODEL = "gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
        },
    }
]


def calculator(body: dict) -> object:
    """First call asks for the add tool; once a tool result is in the conversation, answer with it."""
    messages = body.get("messages") or []
    results = [m for m in messages if m.get("role") == "tool" or m.get("type") == "function_call_output"]
    if results:
        result = results[-1].get("content") or results[-1].get("output")
        return f"The sum is {result}."
    if body.get("tools"):
        return tool_call("add", a=2, b=3)
    return "plain answer from the scripted model"


@pytest.fixture()
def store(store):
    assert instrument(["openai"]) == ["openai"]
    return store


@pytest.fixture()
def server():
    with ScriptedOpenAI(calculator) as server:
        yield server


def chat_spans(spans):
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_CHAT]


def run_tool_loop(client: openai.OpenAI) -> str:
    messages: list = [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": "2+3?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    messages += [first.choices[0].message.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": call.id, "content": str(args["a"] + args["b"])}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    return second.choices[0].message.content


def test_tool_loop_records_one_chat_span_per_request_with_messages_usage_and_headers(store, server):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with agl.tracer.trace("calc-agent", {"q": "2+3"}) as run:
        answer = run_tool_loop(client)
    assert answer == "The sum is 5."
    spans = store.query_spans(run.rollout.rollout_id)
    agent = next(s for s in spans if s.name == "invoke_agent calc-agent")
    chats = sorted(chat_spans(spans), key=lambda s: s.start_time)
    assert len(chats) == len(server.chat_requests()) == 2
    for span in chats:
        assert span.name == f"chat {MODEL}"
        assert span.parent_id == agent.span_id and span.trace_id == agent.trace_id
        assert span.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL
        assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
        assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert parse_json_attr(span.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])[0]["function"]["name"] == "add"
        assert parse_json_attr(span.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
            {"type": "text", "content": "You add numbers."}
        ]
    first_out = parse_json_attr(chats[0].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert first_out[0]["parts"][0]["type"] == "tool_call" and first_out[0]["parts"][0]["arguments"] == {"a": 2, "b": 3}
    assert list(chats[0].attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    second_in = parse_json_attr(chats[1].attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert second_in[-1] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": second_in[-1]["parts"][0]["id"], "response": "5"}]}
    second_out = parse_json_attr(chats[1].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert second_out[0]["parts"] == [{"type": "text", "content": "The sum is 5."}]
    # W3C headers: the server sees the chat span as parent and the rollout in the baggage.
    for request, span in zip(server.chat_requests(), chats):
        version, trace_id, parent_id, _ = request["headers"]["traceparent"].split("-")
        assert (trace_id, parent_id) == (span.trace_id, span.span_id)
        assert f"agl.rollout.id={run.rollout.rollout_id}" in request["headers"]["baggage"]
    assert all(s.rollout_id == run.rollout.rollout_id for s in spans)


async def test_async_and_streaming_calls_record_usage_when_the_stream_ends(store, server):
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")
    async with agl.tracer.trace("stream-agent") as run:
        plain = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert plain.choices[0].message.content == text.strip() == "plain answer from the scripted model"
    chats = sorted(chat_spans(store.query_spans(run.rollout.rollout_id)), key=lambda s: s.start_time)
    assert len(chats) == len(server.chat_requests()) == 2
    streamed = chats[1]
    assert parse_json_attr(streamed.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"].strip() == text.strip()
    assert streamed.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    assert list(streamed.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert streamed.end_time >= chats[0].end_time


def test_sync_stream_helper_and_tool_call_stream(store, server):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with agl.tracer.trace("stream-agent") as run:
        with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=TOOLS) as stream:
            final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "add"
    (chat,) = chat_spans(store.query_spans(run.rollout.rollout_id))
    part = parse_json_attr(chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]
    assert part["type"] == "tool_call" and part["name"] == "add" and part["arguments"] == {"a": 2, "b": 3}


class Sum(pydantic.BaseModel):
    total: int


def test_structured_output_parse_is_captured(store):
    with ScriptedOpenAI(lambda body: json.dumps({"total": 5})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        with agl.tracer.trace("structured") as run:
            parsed = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "2+3"}], response_format=Sum)
    assert parsed.choices[0].message.parsed == Sum(total=5)
    (chat,) = chat_spans(store.query_spans(run.rollout.rollout_id))
    assert chat.attributes["gen_ai.output.type"] == "json"
    assert json.loads(parse_json_attr(chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"]) == {"total": 5}


def test_responses_api_with_a_tool_call(store, server):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    tools = [{"type": "function", "name": "add", "parameters": TOOLS[0]["function"]["parameters"]}]
    with agl.tracer.trace("responses-agent") as run:
        first = client.responses.create(model=MODEL, input="2+3?", instructions="Add.", tools=tools)
        call = first.output[0]
        second = client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": "2+3?"}, call.model_dump(), {"type": "function_call_output", "call_id": call.call_id, "output": "5"}],
        )
    assert second.output_text == "The sum is 5."
    chats = sorted(chat_spans(store.query_spans(run.rollout.rollout_id)), key=lambda s: s.start_time)
    assert len(chats) == len(server.chat_requests()) == 2
    assert parse_json_attr(chats[0].attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Add."}]
    assert parse_json_attr(chats[0].attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["name"] == "add"
    inputs = parse_json_attr(chats[1].attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert chats[1].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


def test_two_agents_selective_triplets(store, server):
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with agl.tracer.trace("team") as run:
        with agl.tracer.trace("writer"):
            draft = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "write"}])
        with agl.tracer.trace("reviewer"):
            client.chat.completions.create(model="reviewer-model", messages=[{"role": "user", "content": draft.choices[0].message.content}])
        agl.emit_reward(1.0)
    spans = store.query_spans(run.rollout.rollout_id)
    writer = spans_to_triplets(spans, agents=["writer"])
    assert len(writer) == 1 and writer[0].agent_name == "writer"
    assert writer[0].prompt_messages[-1]["content"] == "write"
    assert [t.agent_name for t in spans_to_triplets(spans, agents=["reviewer"])] == ["reviewer"]


def test_uninstrument_restores_the_client_and_emits_nothing(store, server):
    from openai.resources.chat.completions.completions import Completions

    assert isinstance(Completions.__dict__["create"], wrapt.BaseObjectProxy)
    uninstrument()
    uninstrument()  # idempotent
    assert not isinstance(Completions.__dict__["create"], wrapt.BaseObjectProxy)
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with agl.tracer.trace("bare") as run:
        answer = run_tool_loop(client)
    assert answer == "The sum is 5."
    assert chat_spans(store.query_spans(run.rollout.rollout_id)) == []
    assert all("traceparent" not in r["headers"] for r in server.chat_requests())
    assert instrument(["openai"]) == ["openai"] and instrument(["openai"]) == ["openai"]


def test_instrumentation_errors_never_reach_user_code(store, server, monkeypatch):
    from agl_openai import wrappers

    def broken(kwargs):
        raise RuntimeError("attribute extraction failed")

    monkeypatch.setattr(wrappers.CHAT, "request", broken)
    monkeypatch.setattr(wrappers.CHAT, "response", lambda r: 1 / 0)
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    with agl.tracer.trace("robust"):
        assert run_tool_loop(client) == "The sum is 5."
    # API errors of the client itself still surface unchanged.
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0).chat.completions.create(model=MODEL, messages=[])
