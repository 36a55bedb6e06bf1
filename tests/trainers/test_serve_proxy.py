"""`serve --proxy`: in front of a scripted upstream or of our own server, streamed or not, errors relayed."""

from __future__ import annotations

import json

import openai
import pytest

from agl_core.runtime.telemetry import flush
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_trl.serve.app import ModelServer
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call
from tests.trainers.serve_helpers import client_for, server_spans, stream
from tests.trainers.serve_model import (
    GREETING,
    QUESTION,
    TOOL_ARGUMENTS,
    TOOLS,
)


def test_proxy_to_scripted_upstream_records_messages_without_tokens(store):
    with ScriptedOpenAI(lambda body: "upstream says hi") as upstream:
        with ModelServer(proxy=upstream.base_url, store=store) as proxy:
            rollout = store.start_rollout(None)
            url = proxy.endpoint().base_url(rollout.rollout_id, rollout.attempt.attempt_id)
            reply = client_for(url).chat.completions.create(model="gpt-x", messages=GREETING)
            streamed = client_for(url).chat.completions.create(model="gpt-x", messages=GREETING, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "upstream says hi"
        sent = upstream.chat_requests()[0]["body"]
    assert reply.choices[0].message.content == "upstream says hi" and sent["logprobs"] is True
    assert reply.choices[0].logprobs is None  # the client did not ask for them
    span = server_spans(store, rollout.rollout_id)[0]
    assert parse_json_attr(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "upstream says hi"
    assert semconv.AGL_RESPONSE_TOKEN_IDS not in span.attributes and semconv.AGL_PROMPT_TOKEN_IDS not in span.attributes


def test_proxy_to_our_own_server_passes_token_ids_through(server, store):
    with ModelServer(proxy=server.base_url, store=store, policy_version=None) as proxy:
        rollout = store.start_rollout(None)
        url = proxy.endpoint().base_url(rollout.rollout_id, rollout.attempt.attempt_id)
        reply = client_for(url).chat.completions.create(model="policy", messages=QUESTION, tools=TOOLS, temperature=0)
    assert reply.choices[0].message.tool_calls[0].function.name == "calculator"
    spans = server_spans(store)
    outer = next(s for s in spans if s.rollout_id == rollout.rollout_id and s.parent_id is None)
    inner = next(s for s in spans if s.parent_id == outer.span_id)  # the proxy passes the trace on
    assert inner.rollout_id == rollout.rollout_id
    for key in (semconv.AGL_PROMPT_TOKEN_IDS, semconv.AGL_RESPONSE_TOKEN_IDS, semconv.AGL_RESPONSE_LOGPROBS):
        assert outer.attributes[key] == inner.attributes[key]


def test_proxy_streams_our_own_servers_tokens_as_they_come(server, store):
    kwargs = dict(messages=GREETING, temperature=1.0, seed=9, max_tokens=24, extra_body={"ignore_eos": True})
    with ModelServer(proxy=server.base_url, store=store, policy_version=None) as proxy:
        rollout = store.start_rollout(None)
        client = client_for(proxy.endpoint().base_url(rollout.rollout_id, rollout.attempt.attempt_id))
        whole = client.chat.completions.create(model="policy", **kwargs)
        chunks = stream(client, stream_options={"include_usage": True}, logprobs=True, **kwargs)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1 and "".join(texts) == whole.choices[0].message.content  # relayed piece by piece
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 24
    assert sum(len(c.choices[0].logprobs.content) for c in chunks if c.choices and c.choices[0].logprobs) == 24
    outer_spans = [s for s in server_spans(store) if s.rollout_id == rollout.rollout_id and s.parent_id is None]
    streamed = outer_spans[-1]
    inner = next(s for s in server_spans(store) if s.parent_id == streamed.span_id)  # the upstream's own span
    for key in (semconv.AGL_PROMPT_TOKEN_IDS, semconv.AGL_RESPONSE_TOKEN_IDS, semconv.AGL_RESPONSE_LOGPROBS):
        assert streamed.attributes[key] == inner.attributes[key] == outer_spans[0].attributes[key]
    assert len(streamed.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]) == 24


def test_proxy_streams_text_completions(server, store):
    body = {"model": "policy", "prompt": "Say hi", "temperature": 1.0, "seed": 4, "max_tokens": 16, "logprobs": 1}
    with ModelServer(proxy=server.base_url, store=store, policy_version=None) as proxy:
        client = client_for(proxy.base_url)
        whole = client.completions.create(**body).choices[0]
        chunks = list(client.completions.create(**body, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.text
    streamed_logprobs = [v for c in chunks if c.choices and c.choices[0].logprobs for v in c.choices[0].logprobs.token_logprobs]
    assert streamed_logprobs == pytest.approx(whole.logprobs.token_logprobs)
    spans = server_spans(store)
    outer = [s for s in spans if s.parent_id is None]
    assert len(outer) == 2 and outer[0].attributes[semconv.AGL_RESPONSE_TOKEN_IDS] == outer[1].attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    assert outer[1].attributes[semconv.AGL_PROMPT_TOKEN_IDS] == outer[0].attributes[semconv.AGL_PROMPT_TOKEN_IDS]


def test_proxy_streams_tool_calls_and_keeps_the_usage_chunk_it_asked_for(store):
    with ScriptedOpenAI(lambda body: tool_call("calculator", expression="2+3")) as upstream:
        with ModelServer(proxy=upstream.base_url, store=store) as proxy:
            chunks = stream(client_for(proxy.base_url), messages=QUESTION, tools=TOOLS)
            with pytest.raises(openai.BadRequestError, match="temperature"):  # refused before any byte is sent
                stream(client_for(proxy.base_url), messages=QUESTION, temperature=3)
        sent = upstream.chat_requests()[0]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)  # the client did not ask for usage: not relayed
    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("calculator", TOOL_ARGUMENTS)]
    (span,) = server_spans(store)
    (message,) = parse_json_attr(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert [(p["name"], p["arguments"]) for p in message["parts"] if p["type"] == "tool_call"] == [("calculator", TOOL_ARGUMENTS)]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0 and list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]


def test_proxy_relays_an_upstream_failure_mid_stream(server, store, tiny):
    model, _ = tiny
    calls = []

    def fail_third_forward(*_) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("device lost")

    hook = model.register_forward_pre_hook(fail_third_forward)
    try:
        with ModelServer(proxy=server.base_url, store=store) as proxy:
            with pytest.raises(openai.APIError, match="device lost"):
                stream(client_for(proxy.base_url), messages=GREETING, temperature=0, max_tokens=20, extra_body={"ignore_eos": True})
    finally:
        hook.remove()
    flush()
    (outer,) = [s for s in store.query_spans() if s.parent_id is None]  # the proxy's; the upstream's is its child
    assert outer.status.code == "ERROR" and "device lost" in outer.status.description


def test_proxy_relays_upstream_errors(server, store):
    with ModelServer(proxy=server.base_url, store=store) as proxy:
        with pytest.raises(openai.BadRequestError, match="temperature"):
            client_for(proxy.base_url).chat.completions.create(model="p", messages=GREETING, temperature=3)
