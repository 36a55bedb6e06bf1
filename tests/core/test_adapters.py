"""Spans → triplets: agent attribution, server-side token merge, reward policies, messages."""

from __future__ import annotations

import json

import pytest

from agl_core.tracing import semconv
from agl_core.training.adapters import spans_to_messages, spans_to_triplets
from agl_core.types import Span

T = "cd" * 16


def span(sid: str, name: str, parent: str | None, start: float, **attrs) -> Span:
    return Span(trace_id=T, span_id=sid * 16, parent_id=parent * 16 if parent else None, name=name,
                start_time=start, end_time=start + 0.5, attributes=attrs, rollout_id="ro-1")


def agent(sid, parent, name, start):
    return span(sid, f"invoke_agent {name}", parent, start, **{semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: name})


def chat(sid, parent, start, text, model="m"):
    return span(
        sid, f"chat {model}", parent, start,
        **{
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: model,
            semconv.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "sys"}]),
            semconv.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"q{sid}"}]}]),
            semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": text}]}]),
        },
    )


def reward(sid, parent, start, value):
    return span(sid, semconv.SPAN_REWARD, parent, start, **{semconv.AGL_REWARD_VALUE: value})


@pytest.fixture
def spans():
    return [
        agent("0", None, "team", 0.0),
        agent("1", "0", "writer", 1.0),
        chat("2", "1", 1.1, "draft"),
        # the serving side of the same request: token ids join the caller's triplet
        span("3", "chat m", "2", 1.15, **{semconv.GEN_AI_OPERATION_NAME: "chat", semconv.AGL_PROMPT_TOKEN_IDS: [1, 2], semconv.AGL_RESPONSE_TOKEN_IDS: [3, 4], semconv.AGL_RESPONSE_LOGPROBS: [-0.1, -0.2], semconv.AGL_POLICY_VERSION: 3}),
        reward("4", "1", 1.9, 0.2),
        agent("5", "0", "reviewer", 2.0),
        chat("6", "5", 2.1, "lgtm"),
        chat("7", None, 3.0, "orphan", model="gpt-x"),
        reward("8", "0", 4.0, 0.9),
    ]


def test_selective_agent_filter_and_server_merge(spans) -> None:
    writer = spans_to_triplets(spans, agents=["writer"])
    assert len(writer) == 1
    [t] = writer
    assert t.agent_name == "writer" and t.prompt_token_ids == [1, 2] and t.response_token_ids == [3, 4]
    assert t.response_logprobs == [-0.1, -0.2] and t.policy_version == 3
    assert t.prompt_messages == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q2"}]
    assert t.response_messages == [{"role": "assistant", "content": "draft"}]
    everyone = spans_to_triplets(spans)
    assert [x.agent_name for x in everyone] == ["writer", "reviewer", "gpt-x"]  # fallback: model name


def test_reward_policies(spans) -> None:
    assert [t.reward for t in spans_to_triplets(spans)] == [0.9, 0.9, 0.9]
    assert [t.reward for t in spans_to_triplets(spans, final_reward=0.5)] == [0.5, 0.5, 0.5]
    assert [t.reward for t in spans_to_triplets(spans, reward_policy="last")] == [None, None, 0.9]
    assert [t.reward for t in spans_to_triplets(spans, reward_policy="per_call")] == [0.2, None, 0.9]
    with pytest.raises(ValueError, match="reward_policy"):
        spans_to_triplets(spans, reward_policy="mean")


def test_messages(spans) -> None:
    conversations = spans_to_messages(spans, agents=["reviewer"])
    assert conversations == [[{"role": "system", "content": "sys"}, {"role": "user", "content": "q6"}, {"role": "assistant", "content": "lgtm"}]]


def test_tool_call_round_trip() -> None:
    from agl_core.tracing.messages import genai_to_openai, openai_to_genai

    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"e": "2+2"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
    ]
    genai, system = openai_to_genai(messages)
    assert genai[1]["parts"][0] == {"type": "tool_call", "id": "c1", "name": "calc", "arguments": {"e": "2+2"}}
    assert genai[2]["parts"][0] == {"type": "tool_call_response", "id": "c1", "response": "4"}
    assert genai_to_openai(genai, system) == messages
