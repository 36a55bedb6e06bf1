"""Adapters: a rollout's spans → `Triplet`s (what trainers learn from) and OpenAI message lists.

A ``chat`` span whose parent is another ``chat`` span is the serving side of the same request
(``serve`` joins the caller's trace through ``traceparent``): `merge_served_calls` folds its token
ids, logprobs and policy version into the caller's span, so one request is one triplet here and one
row in the dashboard's trace view. A triplet belongs to the agent named by its nearest
``invoke_agent`` ancestor (fallback: the request's model name).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from agl_core.store.base import LightningStore
from agl_core.store.rules import latest_reward
from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.tracing.messages import genai_to_openai
from agl_core.types import Rollout, Span, Triplet

RewardPolicy = Literal["final", "last", "per_call"]
REWARD_POLICIES: tuple[str, ...] = ("final", "last", "per_call")
#: What the serving side of a request knows and its caller does not.
SERVED_KEYS = (
    semconv.AGL_PROMPT_TOKEN_IDS,
    semconv.AGL_RESPONSE_TOKEN_IDS,
    semconv.AGL_RESPONSE_LOGPROBS,
    semconv.AGL_POLICY_VERSION,
)


def _is_chat(span: Span) -> bool:
    op = span.attributes.get(semconv.GEN_AI_OPERATION_NAME)
    return op == semconv.OP_CHAT or (op is None and span.name.split(" ", 1)[0] == semconv.OP_CHAT)


def _is_agent(span: Span) -> bool:
    return span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT


def merge_served_calls(spans: Sequence[Span]) -> list[Span]:
    """`spans` (order kept) without the serving-side ``chat`` spans, each merged into its caller.

    The caller (the outermost ``chat`` span of the chain) keeps its own attributes and gains the
    `SERVED_KEYS` of the ``chat`` spans below it (theirs win; the latest to start counts, so a
    retried request gives the retry's tokens, and a proxy's hop gives the model server's). A
    dropped span's children, if any, hang under its caller.
    """
    by_id = {s.span_id: s for s in spans}

    def caller_of(span: Span) -> Span | None:
        """The outermost ``chat`` span above a serving one (None for a span that is no server)."""
        caller, seen = None, {span.span_id}
        parent = by_id.get(span.parent_id or "")
        while parent is not None and _is_chat(parent) and parent.span_id not in seen:
            caller = parent
            seen.add(parent.span_id)
            parent = by_id.get(parent.parent_id or "")
        return caller

    served: dict[str, dict[str, Any]] = {}
    dropped: dict[str, str] = {}  # serving span id -> its caller's span id
    for span in sorted((s for s in spans if _is_chat(s)), key=lambda s: (s.start_time, s.sequence_id)):
        caller = caller_of(span)
        if caller is None:
            continue
        dropped[span.span_id] = caller.span_id
        served.setdefault(caller.span_id, {}).update({k: span.attributes[k] for k in SERVED_KEYS if k in span.attributes})
    merged = []
    for span in spans:
        if span.span_id in dropped:
            continue
        update: dict[str, Any] = {}
        if span.span_id in served:
            update["attributes"] = {**span.attributes, **served[span.span_id]}
        if span.parent_id in dropped:
            update["parent_id"] = dropped[span.parent_id]
        merged.append(span.model_copy(update=update) if update else span)
    return merged


def _agent_of(span: Span, by_id: dict[str, Span]) -> str | None:
    seen: set[str] = set()
    parent = by_id.get(span.parent_id or "")
    while parent is not None and parent.span_id not in seen:
        seen.add(parent.span_id)
        if _is_agent(parent):
            name = parent.attributes.get(semconv.GEN_AI_AGENT_NAME)
            if name:
                return str(name)
        parent = by_id.get(parent.parent_id or "")
    model = span.attributes.get(semconv.GEN_AI_REQUEST_MODEL)
    return str(model) if model else None


def _ints(value: Any) -> list[int] | None:
    value = parse_json_attr(value)
    return [int(v) for v in value] if isinstance(value, list) else None


def _floats(value: Any) -> list[float] | None:
    value = parse_json_attr(value)
    return [float(v) for v in value] if isinstance(value, list) else None


def _messages(span: Span, key: str, with_system: bool) -> list[dict[str, Any]]:
    messages = parse_json_attr(span.attributes.get(key)) or []
    system = parse_json_attr(span.attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)) if with_system else None
    if not isinstance(messages, list):
        return []
    return genai_to_openai(messages, system if isinstance(system, list) else ())


def _triplet(span: Span, agent: str | None) -> Triplet:
    attrs = span.attributes
    tools = parse_json_attr(attrs.get(semconv.GEN_AI_TOOL_DEFINITIONS))
    version = attrs.get(semconv.AGL_POLICY_VERSION)
    return Triplet(
        rollout_id=span.rollout_id or "",
        span_id=span.span_id,
        agent_name=agent,
        prompt_messages=_messages(span, semconv.GEN_AI_INPUT_MESSAGES, with_system=True),
        response_messages=_messages(span, semconv.GEN_AI_OUTPUT_MESSAGES, with_system=False),
        prompt_token_ids=_ints(attrs.get(semconv.AGL_PROMPT_TOKEN_IDS)),
        response_token_ids=_ints(attrs.get(semconv.AGL_RESPONSE_TOKEN_IDS)),
        response_logprobs=_floats(attrs.get(semconv.AGL_RESPONSE_LOGPROBS)),
        policy_version=int(version) if version is not None else None,
        tools=tools if isinstance(tools, list) else None,
    )


def spans_to_triplets(
    spans: Sequence[Span],
    *,
    agents: Sequence[str] | None = None,
    reward_policy: RewardPolicy | str = "final",
    final_reward: float | None = None,
) -> list[Triplet]:
    """The LLM calls of one rollout as triplets, in call order.

    `agents` keeps only calls of those agents (selective optimization). `reward_policy`:
    ``final`` gives the final reward (`final_reward`, else the store's `latest_reward` of the spans)
    to every call;
    ``last`` gives it to the last call only; ``per_call`` gives each reward span to the latest
    call that started before it, several following the same call adding up (calls without one get None).
    """
    if reward_policy not in REWARD_POLICIES:
        raise ValueError(f"reward_policy must be one of {REWARD_POLICIES}, got {reward_policy!r}")
    spans = merge_served_calls(spans)
    by_id = {s.span_id: s for s in spans}
    calls = sorted((s for s in spans if _is_chat(s)), key=lambda s: (s.start_time, s.sequence_id))
    triplets = [_triplet(s, _agent_of(s, by_id)) for s in calls]

    if reward_policy == "per_call":
        for reward in sorted((s for s in spans if s.name == semconv.SPAN_REWARD), key=lambda s: s.start_time):
            before = [i for i, call in enumerate(calls) if call.start_time <= reward.start_time]
            if before:
                target = triplets[before[-1]]
                target.reward = (target.reward or 0.0) + float(reward.attributes[semconv.AGL_REWARD_VALUE])
    else:
        value = final_reward if final_reward is not None else latest_reward(spans)
        targets = triplets[-1:] if reward_policy == "last" else triplets
        for triplet in targets:
            triplet.reward = value

    if agents is not None:
        wanted = set(agents)
        triplets = [t for t in triplets if t.agent_name in wanted]
    return triplets


def spans_to_messages(spans: Sequence[Span], *, agents: Sequence[str] | None = None) -> list[list[dict[str, Any]]]:
    """Each LLM call as one OpenAI-format conversation (prompt messages + the response)."""
    return [t.prompt_messages + t.response_messages for t in spans_to_triplets(spans, agents=agents)]


def rollout_triplets(
    store: LightningStore,
    rollout: Rollout,
    *,
    agents: Sequence[str] | None = None,
    reward_policy: RewardPolicy | str = "final",
) -> list[Triplet]:
    """Triplets of a finished rollout's last attempt, rewarded with its final reward."""
    attempts = store.query_attempts(rollout.rollout_id)
    attempt_id = attempts[-1].attempt_id if attempts else None
    spans = store.query_spans(rollout.rollout_id, attempt_id)
    return spans_to_triplets(spans, agents=agents, reward_policy=reward_policy, final_reward=rollout.final_reward)
