"""What `serve` records: exact token ids and logprobs on spans joined to the caller's trace, policy
versions and the checkpoints a run publishes."""

from __future__ import annotations

import threading

import torch

import agentlightning as agl
from agl_core.plugins.manager import instrument, uninstrument
from agl_core.tracing import semconv
from agl_core.training.adapters import spans_to_triplets
from agl_core.types import ModelCheckpoint
from agl_trl.serve.watch import watch_checkpoints
from tests.trainers.serve_helpers import client_for, server_spans
from tests.trainers.serve_model import (
    GREETING,
    GREETING_REPLY,
)


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
