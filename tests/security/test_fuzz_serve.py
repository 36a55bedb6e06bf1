"""``serve``'s OpenAI routes fuzzed on the tiny model, over a real socket: bad messages, bad tools,
absurd ``n``/``max_tokens``, invalid ``logit_bias`` and prompts, random bodies, streams the client
abandons. Each answer is below 500 and a refusal is one line of JSON; afterwards the server still
completes a valid request."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.security.fuzzing import FUZZ, check_answer, examples

_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12), st.just([]), st.just({})
)
_ANY = st.recursive(_JUNK, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)
_ROLES = st.sampled_from(["user", "system", "assistant", "tool", "developer", "function", "", "USER"])
_CONTENT = st.one_of(
    st.text(max_size=30),
    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "x"]), "text": _JUNK}), max_size=2),
    _ANY,
)
_MESSAGE = st.fixed_dictionaries(
    {"role": _ROLES},
    optional={"content": _CONTENT, "tool_calls": st.one_of(_ANY, st.lists(st.fixed_dictionaries({"function": _ANY}), max_size=2)), "name": _JUNK},
)
_TOOL = st.one_of(
    _ANY,
    st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries({"name": _JUNK}, optional={"parameters": _ANY})}),
)
# Values a request may give to bounded numbers: small valid ones (generation stays short) and absurd ones.
_SMALL = st.integers(1, 3)
_ABSURD = st.one_of(st.integers(-(2**70), 0), st.integers(65, 2**70), st.floats(), st.text(max_size=5), st.booleans(), st.just([1]))
_COMMON = {
    "temperature": st.one_of(st.floats(0, 2), _ABSURD),
    "top_p": st.one_of(st.floats(0, 1), _ABSURD),
    "n": st.one_of(st.integers(1, 2), _ABSURD),
    "stop": st.one_of(st.text(max_size=3), st.lists(_JUNK, max_size=5), _ANY),
    "seed": st.one_of(st.integers(-(2**70), 2**70), _JUNK),
    "stream": st.one_of(st.booleans(), _JUNK),
    "stream_options": _ANY,
    "logit_bias": st.one_of(st.dictionaries(st.text(max_size=6), st.one_of(st.integers(-1000, 1000), _JUNK), max_size=3), _ANY),
    "logprobs": _JUNK,
    "top_logprobs": st.one_of(st.integers(-5, 30), _JUNK),
    "frequency_penalty": _JUNK,
    "response_format": _ANY,
    "ignore_eos": _JUNK,
    "return_token_ids": _JUNK,
    "user": _JUNK,
    "unknown_key": _JUNK,
}
_CHAT = st.fixed_dictionaries(
    {"model": st.one_of(st.just("policy"), _JUNK), "max_tokens": st.one_of(_SMALL, _ABSURD)},
    optional={
        **_COMMON,
        "messages": st.one_of(st.lists(_MESSAGE, max_size=3), _ANY),
        "tools": st.one_of(st.lists(_TOOL, max_size=2), _ANY),
        "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), _ANY),
        "max_completion_tokens": st.one_of(_SMALL, _ABSURD),
    },
)
_TOKEN_IDS = st.lists(st.one_of(st.integers(-(2**40), 2**40), st.integers(0, 500), _JUNK), max_size=6)
_COMPLETION = st.fixed_dictionaries(
    {"model": st.one_of(st.just("policy"), _JUNK), "max_tokens": st.one_of(_SMALL, _ABSURD)},
    optional={**_COMMON, "prompt": st.one_of(st.text(max_size=30), _TOKEN_IDS, st.lists(_TOKEN_IDS, max_size=2), _ANY), "echo": _JUNK, "suffix": _JUNK},
)
GREETING = {"model": "policy", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 3}


@pytest.fixture(scope="module")
def http(tiny):
    from agl_trl.serve.app import ModelServer

    model, tokenizer = tiny
    with ModelServer(model, tokenizer, model_name="policy", store="memory://") as server:
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            yield http
            assert http.post("/chat/completions", json=GREETING).status_code == 200  # still serving


def _post(http, path: str, body: bytes) -> httpx.Response:
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    check_answer("serve", response)
    return response


@settings(FUZZ, max_examples=examples(250))
@given(body=_CHAT)
def test_chat_requests(http, body):
    _post(http, "/chat/completions", json.dumps(body).encode())


@settings(FUZZ, max_examples=examples(150))
@given(body=_COMPLETION)
def test_completion_requests(http, body):
    _post(http, "/completions", json.dumps(body).encode())


@settings(FUZZ, max_examples=examples(100))
@given(path=st.sampled_from(["/chat/completions", "/completions"]), body=st.one_of(st.binary(max_size=100), _ANY.map(lambda v: json.dumps(v).encode())))
def test_random_bodies(http, path, body):
    _post(http, path, body)


def test_absurd_values_and_abandoned_streams(http):
    for body in (
        {**GREETING, "n": 10**9},
        {**GREETING, "max_tokens": -1},
        {**GREETING, "logit_bias": {"not-a-token": 1e9}},
        {**GREETING, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "javascript:x"}}]}]},
        {**GREETING, "tools": [{"type": "function", "function": {"name": 5}}]},
        {"model": "policy", "prompt": [10**12], "max_tokens": 2},
        {"model": "policy", "prompt": [-1], "max_tokens": 2},
    ):
        assert _post(http, "/chat/completions" if "messages" in body else "/completions", json.dumps(body).encode()).status_code == 400
    assert _post(http, "/chat/completions", b"[" * 100_000 + b"]" * 100_000).status_code == 400
    huge = {**GREETING, "max_tokens": 10**9}  # clamped to the model's context, not refused
    assert _post(http, "/chat/completions", json.dumps(huge).encode()).status_code == 200
    for _ in range(5):  # the client reads the first event and goes away
        with http.stream("POST", "/chat/completions", json={**GREETING, "stream": True, "max_tokens": 50, "n": 4}) as stream:
            assert stream.status_code == 200
            next(stream.iter_lines())
    reply = _post(http, "/chat/completions", json.dumps(GREETING).encode())
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["role"] == "assistant"
