"""Trace rows from stored spans (`views.trace_view`): the serving side of a request is merged into
its caller's ``chat`` row by the rule the adapters use, whatever the chain looks like."""

from __future__ import annotations

from agl_core.dashboard.views import trace_view
from agl_core.tracing import semconv
from agl_core.training.adapters import spans_to_triplets
from agl_core.types import Span

CHAT = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT}


def _span(n: int, parent: int | None, start: float, name: str = "chat policy", **attrs) -> Span:
    return Span(
        trace_id="1" * 32, span_id=f"{n:016x}", parent_id=f"{parent:016x}" if parent is not None else None,
        name=name, start_time=start, end_time=start + 1, attributes=attrs, rollout_id="ro-1", attempt_id="at-1",
    )


def _served(ids: list[int], version: int) -> dict:
    return {**CHAT, semconv.GEN_AI_PROVIDER_NAME: "agentlightning", semconv.AGL_RESPONSE_TOKEN_IDS: ids,
            semconv.AGL_RESPONSE_LOGPROBS: [-0.5] * len(ids), semconv.AGL_POLICY_VERSION: version}


AGENT = _span(1, None, 0.0, "invoke_agent writer", **{
    semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: "writer"})


def test_a_retried_request_is_one_row_with_the_retrys_tokens():
    spans = [AGENT, _span(2, 1, 0.1, **CHAT), _span(3, 2, 0.2, **_served([1, 2], 4)), _span(4, 2, 0.5, **_served([7], 5))]
    rows = trace_view(spans)
    assert [r["name"] for r in rows] == ["invoke_agent writer", "chat policy"]
    chat = rows[1]
    assert (chat["span_id"], chat["response_token_ids"], chat["policy_version"]) == (f"{2:016x}", 1, 5)
    assert chat["attributes"][semconv.AGL_RESPONSE_LOGPROBS] == "[1 values]"
    (triplet,) = spans_to_triplets(spans)
    assert triplet.span_id == chat["span_id"] and triplet.response_token_ids == [7] and triplet.agent_name == "writer"


def test_a_proxy_hop_gives_the_model_servers_tokens_and_its_children_move_up():
    proxy = {**CHAT, semconv.GEN_AI_PROVIDER_NAME: "agentlightning"}
    spans = [AGENT, _span(2, 1, 0.1, **CHAT), _span(3, 2, 0.2, **proxy), _span(4, 3, 0.3, **_served([5, 6, 7], 2)),
             _span(5, 3, 0.9, "agl.annotation")]
    rows = {r["name"]: r for r in trace_view(spans)}
    assert len(trace_view(spans)) == 3 and rows["chat policy"]["response_token_ids"] == 3
    assert rows["agl.annotation"]["parent_id"] == f"{2:016x}"


def test_a_server_span_without_a_caller_stays_its_own_row():
    """An agent that is not instrumented reaches `serve` through the rollout-scoped URL: no client span."""
    rows = trace_view([AGENT, _span(2, 1, 0.1, **_served([1, 2, 3], 1))])
    assert [r["kind"] for r in rows] == ["agent", "llm"] and rows[1]["response_token_ids"] == 3
