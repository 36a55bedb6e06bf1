"""`serve`: the real openai client against ModelServer on a tiny local model, spans in the store,
trace joining, rollout-scoped URLs, policy switches, bad requests, the proxy and the CLI."""

from __future__ import annotations

import concurrent.futures
import json
import threading

import httpx
import openai
import pytest
import torch
from agl_trl.serve import ModelServer, watch_checkpoints
from agl_trl.serve_protocol import TextStream, parse_tool_calls
from click.testing import CliRunner

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.runtime.telemetry import flush
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import spans_to_triplets
from agl_core.types import LLMEndpoint, ModelCheckpoint
from tests.fixtures.scripted_openai import ScriptedOpenAI, tool_call
from tests.trainers import serve_model
from tests.trainers.serve_model import (
    GREETING,
    GREETING_REPLY,
    QUESTION,
    TOOL_ARGUMENTS,
    TOOLS,
)


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: more threads only add contention
    yield serve_model.build()
    torch.set_num_threads(threads)


@pytest.fixture()
def store():
    store = LightningStore("memory://")
    agl.configure(store=store)
    return store


@pytest.fixture()
def server(tiny, store):
    model, tokenizer = tiny
    with ModelServer(model, tokenizer, model_name="policy", store=store, policy_version=3) as server:
        yield server


def client_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


def server_spans(store: LightningStore, rollout_id: str | None = None) -> list:
    flush()
    spans = store.query_spans(rollout_id) if rollout_id else store.query_spans()
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == "agentlightning"]


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


def test_streaming_with_usage(server):
    client = client_for(server.base_url)
    chunks = list(
        client.chat.completions.create(
            model="policy", messages=GREETING, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == GREETING_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def stream(client: openai.OpenAI, **kwargs) -> list:
    return list(client.chat.completions.create(model="policy", stream=True, **kwargs))


def streamed_texts(chunks: list) -> dict[int, str]:
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return texts


def test_streaming_sends_tokens_as_the_engine_samples_them(server, store, tiny):
    model, tokenizer = tiny
    client = client_for(server.base_url)
    kwargs = dict(messages=GREETING, temperature=1.0, seed=3, max_tokens=40, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(model="policy", **kwargs)
    ids = server_spans(store)[0].attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    steps, released = [], []  # one forward per sampled token
    # before these steps the engine waits (up to 5 s) until the client has the text of every token sampled so far
    gates = {at: threading.Event() for at in (5, 15, 25)}
    sampled_text = {at: tokenizer.decode(ids[: at - 1], skip_special_tokens=True) for at in gates}

    def step(*_) -> None:
        steps.append(1)
        if len(steps) in gates:
            released.append(gates[len(steps)].wait(5))

    hook = model.register_forward_pre_hook(step)
    try:
        received = ""
        for chunk in client.chat.completions.create(model="policy", stream=True, **kwargs):
            if chunk.choices and chunk.choices[0].delta.content:
                received += chunk.choices[0].delta.content
                for at, gate in gates.items():
                    if received.startswith(sampled_text[at]):
                        gate.set()
    finally:
        hook.remove()
    # the client had the text before the engine took steps 5, 15 and 25 of 40 (none waited in vain)
    assert len(steps) == 40 and released == [True, True, True]
    assert received == whole.choices[0].message.content and len(sampled_text[5]) < len(sampled_text[25]) < len(received)
    first, streamed = server_spans(store)
    assert streamed.attributes[semconv.AGL_RESPONSE_TOKEN_IDS] == ids
    assert streamed.attributes[semconv.AGL_RESPONSE_LOGPROBS] == first.attributes[semconv.AGL_RESPONSE_LOGPROBS]
    assert streamed.attributes[semconv.AGL_POLICY_VERSION] == 3 and streamed.name == "chat policy"


def test_streamed_deltas_equal_the_non_streamed_text(server):
    client = client_for(server.base_url)
    for kwargs in (
        dict(messages=GREETING, temperature=1.3, seed=11, n=3, max_tokens=24),
        dict(messages=GREETING, temperature=0, stop=[" there"]),
        dict(messages=GREETING, temperature=0, stop=["lo th", "zzz"]),
        dict(messages=GREETING, temperature=1.5, seed=2, max_tokens=30, stop=["e"], extra_body={"ignore_eos": True}),
    ):
        whole = client.chat.completions.create(model="policy", **kwargs)
        chunks = stream(client, **kwargs)
        assert streamed_texts(chunks) == {c.index: c.message.content for c in whole.choices}
        finishes = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason}
        assert finishes == {c.index: c.finish_reason for c in whole.choices}
        for stop in kwargs.get("stop", []):
            assert all(stop not in text for text in streamed_texts(chunks).values())
    assert streamed_texts(stream(client, messages=GREETING, temperature=0, stop=["lo th"])) == {0: "hel"}

    prompt_body = {"model": "policy", "prompt": "Say hi", "temperature": 1.0, "seed": 4, "max_tokens": 16}
    text = client.completions.create(**prompt_body).choices[0].text
    assert "".join(c.choices[0].text for c in client.completions.create(**prompt_body, stream=True) if c.choices) == text


def test_streamed_tool_call_comes_as_tool_calls_with_usage_last(server, store):
    chunks = stream(
        client_for(server.base_url),
        messages=QUESTION,
        tools=TOOLS,
        temperature=0,
        stream_options={"include_usage": True},
    )
    assert streamed_texts(chunks) == {0: ""}  # no <tool_call> markup as content
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("calculator", TOOL_ARGUMENTS)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    (span,) = server_spans(store)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(
        span.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    )
    assert len({c.id for c in chunks}) == 1 and chunks[0].id == span.attributes[semconv.GEN_AI_RESPONSE_ID]


def test_text_stream_holds_back_partial_characters_stops_and_tool_calls(tiny):
    _, tokenizer = tiny

    def run(text: str, **kwargs) -> list[str]:
        stream = TextStream(tokenizer, **kwargs)
        return [stream.push([t]) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]

    text = "héllo ✓ 日本 there"
    deltas = run(text)
    assert "".join(deltas) == text and not any("\ufffd" in d for d in deltas)
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) > len([d for d in deltas if d])  # held bytes
    assert "".join(run("hello there", stop=(" the",))) == "hello"
    assert "".join(run("hello th", stop=(" there",))) == "hello"  # " th" may still become the stop
    assert "".join(run('ok <tool_call>{"name": "x"}</tool_call>', tools=True)) == "ok"
    assert "".join(run("ok <tool_", tools=True)) == "ok"
    assert "".join(run("\n<tool_call>", tools=True)) == ""  # leading whitespace: held to the end


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


def test_rollout_scoped_url_records_exact_tokens(server, store, tiny):
    _, tokenizer = tiny
    rollout = store.start_rollout({"q": "hi"})
    rid, aid = rollout.rollout_id, rollout.attempt.attempt_id
    url = server.endpoint().base_url(rid, aid)
    assert url.endswith(f"/rollout/{rid}/attempt/{aid}/v1")
    response = client_for(url).chat.completions.create(model="writer", messages=GREETING, temperature=0.7, seed=5)
    (span,) = server_spans(store, rid)
    attrs = span.attributes
    assert span.name == "chat writer" and span.attempt_id == aid and span.parent_id is None
    assert attrs[semconv.AGL_PROMPT_TOKEN_IDS] == tokenizer.apply_chat_template(
        GREETING, add_generation_prompt=True, return_dict=False
    )
    ids = attrs[semconv.AGL_RESPONSE_TOKEN_IDS]
    assert tokenizer.decode(ids, skip_special_tokens=True) == response.choices[0].message.content
    assert len(attrs[semconv.AGL_RESPONSE_LOGPROBS]) == len(ids) == response.usage.completion_tokens
    assert attrs[semconv.AGL_POLICY_VERSION] == 3 and attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.7
    (triplet,) = spans_to_triplets(store.query_spans(rid))
    assert triplet.response_token_ids == ids and triplet.agent_name == "writer"


def test_logprobs_are_the_policys_at_the_request_temperature(server, store, tiny):
    model, tokenizer = tiny
    rollout = store.start_rollout(None)
    url = server.endpoint().base_url(rollout.rollout_id, rollout.attempt.attempt_id)
    client_for(url).chat.completions.create(model="policy", messages=GREETING, temperature=0.5, seed=2, max_tokens=8)
    (span,) = server_spans(store, rollout.rollout_id)
    prompt, ids = span.attributes[semconv.AGL_PROMPT_TOKEN_IDS], span.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1] / 0.5
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).view(-1)
    assert torch.allclose(expected, torch.tensor(span.attributes[semconv.AGL_RESPONSE_LOGPROBS]), atol=1e-4)


def test_span_is_child_of_the_instrumented_clients_span(server, store):
    assert instrument(["openai"]) == ["openai"]
    try:
        with agl.tracer.trace("asker", {"q": "hi"}) as run:
            reply = client_for(server.base_url).chat.completions.create(
                model="policy", messages=GREETING, temperature=0
            )
        rid = run.rollout.rollout_id
    finally:
        uninstrument()
    spans = store.query_spans(rid)
    server_span = next(s for s in spans if s.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == "agentlightning")
    client_span = next(s for s in spans if s.span_id == server_span.parent_id)
    assert client_span.name.startswith("chat") and client_span.trace_id == server_span.trace_id
    assert server_span.rollout_id == rid  # from the baggage
    (triplet,) = spans_to_triplets(spans)
    assert triplet.span_id == client_span.span_id and triplet.agent_name == "asker"
    assert triplet.response_token_ids == server_span.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    assert triplet.policy_version == 3 and reply.choices[0].message.content == GREETING_REPLY


def test_policy_version_switch(server, store):
    client = client_for(server.base_url)
    with server.paused():  # what a trainer does around an in-place optimizer step
        assert server.set_policy(version=5) == 5
    client.chat.completions.create(model="policy", messages=GREETING, temperature=0)
    assert server_spans(store)[-1].attributes[semconv.AGL_POLICY_VERSION] == 5
    assert server.endpoint().policy_version == 5 and server.set_policy() == 6


def test_checkpoint_in_store_is_loaded(server, store, tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    stop = threading.Event()
    watcher = threading.Thread(target=watch_checkpoints, args=(server, store, 0.05, stop), daemon=True)
    watcher.start()
    try:
        store.add_resources({"ckpt": ModelCheckpoint(path=str(tmp_path / "ckpt"), step=9)})
        for _ in range(200):
            if server.policy_version == 9:
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        watcher.join()
    assert server.policy_version == 9 and server.engine.model is not model
    reply = client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
    assert reply.choices[0].message.content == GREETING_REPLY


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


def test_endpoint_resource(server):
    endpoint = server.endpoint()
    assert isinstance(endpoint, LLMEndpoint) and endpoint.rollout_scoped and endpoint.model == "policy"
    assert endpoint.endpoint == server.base_url and server.endpoint(rollout_scoped=False).rollout_scoped is False


def test_cli_help():
    from agl_core.cli.main import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--proxy" in result.output and "--model" in result.output
    assert CliRunner().invoke(main, ["serve"]).exit_code != 0


def test_api_key_is_required_of_every_client_when_given(tiny, store, monkeypatch):
    model, tokenizer = tiny
    with ModelServer(model, tokenizer, store=store, api_key="k3y") as server:
        with pytest.raises(openai.AuthenticationError, match="AGL_SERVE_API_KEY"):
            client_for(server.base_url).chat.completions.create(model="policy", messages=GREETING, temperature=0)
        assert httpx.get(f"http://{server.host}:{server.port}/health").status_code == 200
        endpoint = server.endpoint(rollout_scoped=False)  # what a trainer hands its agents
        client = openai.OpenAI(base_url=endpoint.endpoint, api_key=endpoint.api_key, max_retries=0)
        reply = client.chat.completions.create(model="policy", messages=GREETING, temperature=0)
    assert reply.choices[0].message.content == GREETING_REPLY
    assert len(server_spans(store)) == 1  # the refused request made no span

    with pytest.raises(RuntimeError, match="refusing to serve the model on 0.0.0.0"):
        ModelServer(model, tokenizer, store=store, host="0.0.0.0")
    from agl_core.cli.main import main

    monkeypatch.delenv("AGL_SERVE_API_KEY", raising=False)
    refused = CliRunner().invoke(main, ["serve", "--model", "/nonexistent", "--host", "0.0.0.0"])
    assert refused.exit_code != 0 and "AGL_SERVE_API_KEY" in refused.output  # refused before loading the model


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
