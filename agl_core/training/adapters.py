"""Adapters: a rollout's spans → `Triplet`s (what trainers learn from) and OpenAI message lists.

A ``chat`` span whose parent is another ``chat`` span is the serving side of the same request
(``serve`` joins the caller's trace through ``traceparent``): its token ids and logprobs are merged
into the caller's span instead of making a second triplet. A triplet belongs to the agent named by
its nearest ``invoke_agent`` ancestor (fallback: the request's model name).
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


def _is_chat(span: Span) -> bool:
    op = span.attributes.get(semconv.GEN_AI_OPERATION_NAME)
    return op == semconv.OP_CHAT or (op is None and span.name.split(" ", 1)[0] == semconv.OP_CHAT)


def _is_agent(span: Span) -> bool:
    return span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT


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


def _triplet(span: Span, server: Span | None, agent: str | None) -> Triplet:
    def token_attr(key: str) -> Any:
        if server is not None and key in server.attributes:
            return server.attributes[key]
        return span.attributes.get(key)

    tools = parse_json_attr(span.attributes.get(semconv.GEN_AI_TOOL_DEFINITIONS))
    version = token_attr(semconv.AGL_POLICY_VERSION)
    return Triplet(
        rollout_id=span.rollout_id or "",
        span_id=span.span_id,
        agent_name=agent,
        prompt_messages=_messages(span, semconv.GEN_AI_INPUT_MESSAGES, with_system=True),
        response_messages=_messages(span, semconv.GEN_AI_OUTPUT_MESSAGES, with_system=False),
        prompt_token_ids=_ints(token_attr(semconv.AGL_PROMPT_TOKEN_IDS)),
        response_token_ids=_ints(token_attr(semconv.AGL_RESPONSE_TOKEN_IDS)),
        response_logprobs=_floats(token_attr(semconv.AGL_RESPONSE_LOGPROBS)),
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
    call that started before it (calls without one get None).
    """
    if reward_policy not in REWARD_POLICIES:
        raise ValueError(f"reward_policy must be one of {REWARD_POLICIES}, got {reward_policy!r}")
    by_id = {s.span_id: s for s in spans}
    chats = sorted((s for s in spans if _is_chat(s)), key=lambda s: (s.start_time, s.sequence_id))
    servers: dict[str, Span] = {}
    calls: list[Span] = []
    for span in chats:
        parent = by_id.get(span.parent_id or "")
        if parent is not None and _is_chat(parent):
            servers[parent.span_id] = span
        else:
            calls.append(span)
    triplets = [_triplet(s, servers.get(s.span_id), _agent_of(s, by_id)) for s in calls]

    if reward_policy == "per_call":
        for reward in sorted((s for s in spans if s.name == semconv.SPAN_REWARD), key=lambda s: s.start_time):
            before = [i for i, call in enumerate(calls) if call.start_time <= reward.start_time]
            if before:
                triplets[before[-1]].reward = float(reward.attributes[semconv.AGL_REWARD_VALUE])
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
