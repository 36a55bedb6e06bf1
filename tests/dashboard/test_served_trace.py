"""A request behind `serve` is one ``chat`` row in the trace view, with the server's token ids,
logprobs and policy version, under one ``invoke_agent`` span.

The store is filled by a real run: `agl.Agent` under the `Runner`, asking a real `ModelServer` on
the serve tests' tiny model (one training step: any reply will do, the spans are what is tested).
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app
from agl_core.runtime.agent import Agent
from agl_core.runtime.runner import Runner
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.training.adapters import spans_to_triplets
from tests.dashboard.chromium import ARTIFACTS, assert_rendered_cleanly, browser_page, needs_chromium, running_dashboard

torch = pytest.importorskip("torch")
from agl_trl.serve.app import ModelServer  # noqa: E402
from tests.trainers import serve_model  # noqa: E402

AGENT = "greeter"
POLICY_VERSION = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(store, rollout id, the spans as recorded) after one rollout of the agent behind `serve`."""
    home = tmp_path_factory.mktemp("served")
    store = LightningStore(f"sqlite:///{home / 'store.db'}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: more threads only add contention
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGL_HOME", str(home))
        model, tokenizer = serve_model.build(steps=1)
        with ModelServer(model, tokenizer, model_name="policy", store=store, policy_version=POLICY_VERSION) as server:
            store.add_resources({"policy": server.endpoint()})
            store.enqueue_rollout({"question": "Say hi"})
            Runner(Agent(AGENT, request={"max_tokens": 4}), store).run()
    torch.set_num_threads(threads)
    (rollout,) = store.query_rollouts()
    yield store, rollout.rollout_id, store.query_spans(rollout.rollout_id)
    store.close()


def _server_span(spans):
    return next(s for s in spans if s.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == "agentlightning")


def test_spans_as_recorded_one_agent_span_and_the_servers_chat_under_the_clients(served):
    _, _, spans = served
    assert sorted(s.name for s in spans) == ["chat policy", "chat policy", f"invoke_agent {AGENT}"]
    server = _server_span(spans)
    client = next(s for s in spans if s.span_id == server.parent_id)
    agent = next(s for s in spans if s.span_id == client.parent_id)
    assert agent.parent_id is None and agent.name == f"invoke_agent {AGENT}"
    assert semconv.AGL_RESPONSE_TOKEN_IDS in server.attributes and semconv.AGL_RESPONSE_TOKEN_IDS not in client.attributes


def test_trace_api_merges_the_servers_span_into_the_clients_row(served):
    store, rollout_id, spans = served
    body = TestClient(create_dashboard_app(store)).get(f"/api/rollouts/{rollout_id}/spans").json()
    rows = body["items"]
    assert body["total"] == 3 and [r["kind"] for r in rows].count("llm") == 1
    (agent,) = [r for r in rows if r["kind"] == "agent"]
    (chat,) = [r for r in rows if r["kind"] == "llm"]
    server = _server_span(spans)
    ids = server.attributes[semconv.AGL_RESPONSE_TOKEN_IDS]
    assert chat["span_id"] == server.parent_id and chat["parent_id"] == agent["span_id"]
    assert chat["response_token_ids"] == len(ids) > 0 and chat["policy_version"] == POLICY_VERSION
    assert chat["attributes"][semconv.AGL_RESPONSE_LOGPROBS] == f"[{len(ids)} values]"
    assert chat["attributes"][semconv.AGL_PROMPT_TOKEN_IDS].endswith(" values]")
    assert chat["output_messages"][0]["role"] == "assistant"  # the client's own content stays
    (triplet,) = spans_to_triplets(spans)  # the rule trainers use: the same request, the same span
    assert triplet.span_id == chat["span_id"] and triplet.response_token_ids == ids


@needs_chromium
def test_served_request_is_one_chat_row_with_token_ids_in_chromium(served):
    store, rollout_id, spans = served
    with running_dashboard(store) as url, browser_page() as page:
        page.goto(url + f"#/rollouts/{rollout_id}")
        page.wait_for_selector(".wf-body .wf-row")
        assert page.locator(".wf-body .span-name").all_inner_texts() == [f"invoke_agent {AGENT}", "chat policy"]
        chat = page.locator(".wf-body .wf-row.kind-llm")
        ids = len(_server_span(spans).attributes[semconv.AGL_RESPONSE_TOKEN_IDS])
        assert chat.count() == 1 and chat.get_attribute("data-token-ids") == str(ids)
        assert "ids" in chat.locator(".wf-info").inner_text()
        detail = page.locator("#span-detail").inner_text()  # the LLM row is selected on load
        assert f"response token ids\n{ids}" in detail and f"policy version\n{POLICY_VERSION}" in detail
        assert semconv.AGL_RESPONSE_LOGPROBS in detail
        assert_rendered_cleanly(page)
        page.screenshot(path=ARTIFACTS / "trace_served.png", full_page=True)
