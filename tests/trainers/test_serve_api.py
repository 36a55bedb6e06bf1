"""`serve` through the real openai client: completions, sampling parameters, tool calls, batching,
bad requests, the endpoint resource."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import openai
import pytest

from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.types import LLMEndpoint
from agl_trl.serve.responses import parse_tool_calls
from tests.trainers.serve_helpers import client_for, server_spans
from tests.trainers.serve_model import (
    GREETING,
    GREETING_REPLY,
    QUESTION,
    TOOL_ARGUMENTS,
    TOOLS,
)


def test_chat_completion_greedy(server):
    response = client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
    choice = response.choices[0]
    assert choice.message.content == GREETING_REPLY and choice.finish_reason == "stop"
    assert response.usage.completion_tokens > 0 and response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_models_and_completions(server, tiny):
    client = client_for(server.base_url)
    assert [m.id for m in client.models.list()] == ["policy"]
    _, tokenizer = tiny
    prompt = tokenizer.apply_chat_template(GREETING, add_generation_prompt=True, tokenize=False)
    completion = client.completions.create(model="policy", prompt=prompt, temperature=0, max_tokens=20)
    assert completion.choices[0].text == GREETING_REPLY


def test_n_stop_max_tokens(server, store):
    client = client_for(server.base_url)
    two = client.chat.completions.create(model="policy", messages=GREETING, n=2, temperature=1.0, seed=1)
    assert [c.index for c in two.choices] == [0, 1]
    span = server_spans(store)[-1]
    per_choice = parse_json_attr(span.attributes[semconv.AGL_RESPONSE_CHOICES_TOKEN_IDS])
    assert len(per_choice) == 2 and per_choice[0] == span.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]

    stopped = client.chat.completions.create(model="policy", messages=GREETING, temperature=0, stop=[" there"])
    assert stopped.choices[0].message.content == "hello" and stopped.choices[0].finish_reason == "stop"

    short = client.chat.completions.create(model="policy", messages=GREETING, temperature=0, max_tokens=1)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 1
    assert GREETING_REPLY.startswith(short.choices[0].message.content)
    newer = client.chat.completions.create(model="policy", messages=GREETING, temperature=0, max_completion_tokens=1)
    assert newer.usage.completion_tokens == 1
    longer = client.chat.completions.create(
        model="policy", messages=GREETING, temperature=0, max_tokens=9, extra_body={"ignore_eos": True}
    )
    assert longer.usage.completion_tokens == 9 and longer.choices[0].finish_reason == "length"


def test_seed_is_deterministic(server):
    client = client_for(server.base_url)

    def sample(seed: int) -> list[str]:
        r = client.chat.completions.create(
            model="policy", messages=GREETING, temperature=1.5, n=3, seed=seed, max_tokens=12
        )
        return [c.message.content for c in r.choices]

    assert sample(7) == sample(7)
    assert len({tuple(sample(s)) for s in range(4)}) > 1  # temperature 1.5 on a tiny model varies


def test_tool_call_parsed(server, store):
    response = client_for(server.base_url).chat.completions.create(
        model="policy", messages=QUESTION, tools=TOOLS, temperature=0
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == TOOL_ARGUMENTS
    span = server_spans(store)[-1]
    (output,) = parse_json_attr(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"][0]["type"] == "tool_call" and output["parts"][0]["arguments"] == TOOL_ARGUMENTS
    assert parse_json_attr(span.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])[0]["function"]["name"] == "calculator"


def test_tool_call_parser_and_template_round_trip(tiny):
    _, tokenizer = tiny
    calls = [
        {"type": "function", "function": {"name": "calculator", "arguments": json.dumps({"expression": "1+1"})}},
        {"type": "function", "function": {"name": "search", "arguments": {"q": "x"}}},
    ]
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Let me see.", "tool_calls": calls}]
    rendered = tokenizer.apply_chat_template(chat, tools=TOOLS, tokenize=False)
    assistant = rendered.split("<|im_start|>assistant\n", 1)[1].split("<|im_end|>", 1)[0]
    content, parsed = parse_tool_calls(assistant)
    assert content == "Let me see."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parsed] == [
        ("calculator", {"expression": "1+1"}),
        ("search", {"q": "x"}),
    ]
    assert parse_tool_calls('<tool_call>{"name": oops}</tool_call>') == ('<tool_call>{"name": oops}</tool_call>', [])
    assert parse_tool_calls("<tool_call>{") == ("<tool_call>{", [])


def test_concurrent_requests_are_batched_and_equal_to_sequential(server):
    client = client_for(server.base_url)
    asks = [(GREETING, None), (QUESTION, TOOLS)] * 6

    def ask(item):
        messages, tools = item
        kwargs = {"tools": tools} if tools else {}
        r = client.chat.completions.create(model="policy", messages=messages, temperature=0, **kwargs)
        return r.choices[0].message.model_dump_json()

    sequential = [ask(a) for a in asks[:2]]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        together = list(pool.map(ask, asks))
    strip = lambda s: {**json.loads(s), "tool_calls": [c["function"] for c in json.loads(s).get("tool_calls") or []]}  # noqa: E731
    assert [strip(s) for s in together] == [strip(s) for s in sequential] * 6


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"model": "policy", "messages": GREETING, "frobnicate": 1}, "frobnicate"),
        ({"model": "policy", "messages": []}, "messages"),
        ({"model": "policy", "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"model": "policy", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text"),
        ({"model": "policy", "messages": GREETING, "temperature": 3}, "temperature"),
        ({"model": "policy", "messages": GREETING, "n": 0}, "'n'"),
        ({"model": "policy", "messages": GREETING, "max_tokens": -1}, "max_tokens"),
        ({"model": "policy", "messages": GREETING, "tool_choice": "required"}, "tool_choice"),
        ({"messages": GREETING}, "model"),
    ],
)
def test_bad_requests_are_400_and_the_server_goes_on(server, body, needle):
    response = httpx.post(server.base_url + "/chat/completions", json=body)
    assert response.status_code == 400 and needle in response.json()["error"]["message"]
    assert httpx.post(server.base_url + "/chat/completions", content=b"{not json").status_code == 400
    with pytest.raises(openai.BadRequestError):
        client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, top_p=7)
    ok = client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
    assert ok.choices[0].message.content == GREETING_REPLY


@pytest.mark.parametrize("prompt, needle", [("", "empty"), ([5, 10**9], "outside the vocabulary"), ([-1], "outside the vocabulary")])
def test_prompts_the_model_cannot_take_are_400_and_spoil_no_running_batch(server, tiny, prompt, needle):
    _, tokenizer = tiny
    client = client_for(server.base_url)
    kwargs = dict(model="policy", messages=GREETING, temperature=1.0, seed=5, max_tokens=40, extra_body={"ignore_eos": True})
    alone = client.chat.completions.create(**kwargs).choices[0].message.content
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(client.chat.completions.create, **kwargs)
        with pytest.raises(openai.BadRequestError, match=needle):
            client.completions.create(model="policy", prompt=prompt, max_tokens=4)
        assert running.result().choices[0].message.content == alone


def test_endpoint_resource(server):
    endpoint = server.endpoint()
    assert isinstance(endpoint, LLMEndpoint) and endpoint.rollout_scoped and endpoint.model == "policy"
    assert endpoint.endpoint == server.base_url and server.endpoint(rollout_scoped=False).rollout_scoped is False


def test_openai_logprobs_and_top_p(server, store):
    client = client_for(server.base_url)
    reply = client.chat.completions.create(
        model="policy", messages=GREETING, temperature=1.0, seed=4, logprobs=True, top_logprobs=2
    )
    entries = reply.choices[0].logprobs.content
    span = server_spans(store)[-1]
    assert [e.logprob for e in entries] == pytest.approx(span.attributes[semconv.AGL_RESPONSE_LOGPROBS])
    assert "".join(e.token for e in entries).startswith(reply.choices[0].message.content)
    assert all(len(e.top_logprobs) == 2 and e.top_logprobs[0].logprob >= e.logprob - 1e-6 for e in entries)
    # a tiny nucleus keeps only the most likely token: sampling at a high temperature becomes greedy
    nucleus = client.chat.completions.create(model="policy", messages=GREETING, temperature=1.9, top_p=1e-6)
    assert nucleus.choices[0].message.content == GREETING_REPLY


def test_completion_from_token_ids(server, tiny):
    _, tokenizer = tiny
    ids = tokenizer.apply_chat_template(GREETING, add_generation_prompt=True, return_dict=False)
    body = {"model": "policy", "prompt": ids, "temperature": 0, "logprobs": 0, "return_token_ids": True}
    data = httpx.post(server.base_url + "/completions", json=body).json()
    (choice,) = data["choices"]
    assert choice["text"] == GREETING_REPLY and data["prompt_token_ids"] == ids
    assert len(choice["logprobs"]["token_logprobs"]) == len(choice["token_ids"]) == data["usage"]["completion_tokens"]
