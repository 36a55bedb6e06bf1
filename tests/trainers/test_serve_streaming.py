"""`serve` streaming: tokens go out as the engine samples them and add up to the non-streamed reply."""

from __future__ import annotations

import json
import threading

from agl_core.tracing import semconv
from agl_trl.serve.responses import TextStream
from tests.trainers.serve_helpers import client_for, server_spans, stream, streamed_texts
from tests.trainers.serve_model import (
    GREETING,
    GREETING_REPLY,
    QUESTION,
    TOOL_ARGUMENTS,
    TOOLS,
)


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
