"""A small store holding what a finished training run leaves behind, built through the store API."""

from __future__ import annotations

import json
import time

from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.types import LLMEndpoint, ModelCheckpoint, PromptTemplate, Run, Span

RUN_ID = "run-grpo-demo"
LIVE_RUN_ID = "run-apo-live"
TRAIN_STEPS = 12
HELDOUT_STEPS = (0, 4, 8, 11)
AGENTS = ("solver", "critic")
ROLLOUTS = 24  # every 6th fails
TRACE_SPAN_NAMES = [
    "invoke_agent solver",
    "chat tiny-policy",
    "execute_tool calculator",
    "chat tiny-policy",
    "agl.reward",
]


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def trace_spans(rollout_id: str, attempt_id: str, reward: float, t0: float, index: int) -> list[Span]:
    """The spans of one solver rollout: agent → LLM call → tool → LLM call, then its reward."""
    trace = f"{index + 1:032x}"  # OTel ids are never all zeros
    ids = [f"{index + 1:08x}{n:08x}" for n in range(5)]
    common = {semconv.AGL_ROLLOUT_ID: rollout_id, semconv.AGL_ATTEMPT_ID: attempt_id}

    def span(n: int, parent: int | None, start: float, end: float, attrs: dict) -> Span:
        return Span(
            trace_id=trace, span_id=ids[n], parent_id=ids[parent] if parent is not None else None,
            name=TRACE_SPAN_NAMES[n], start_time=t0 + start, end_time=t0 + end,
            attributes={**common, **attrs}, rollout_id=rollout_id, attempt_id=attempt_id,
        )

    chat = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT, semconv.GEN_AI_REQUEST_MODEL: "tiny-policy"}
    return [
        span(0, None, 0.0, 1.2, {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME: "solver"}),
        span(1, 0, 0.05, 0.45, {
            **chat,
            semconv.GEN_AI_INPUT_MESSAGES: _messages("user", f"What is {index} * 7?"),
            semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [
                {"type": "tool_call", "id": "call-1", "name": "calculator", "arguments": {"expr": f"{index}*7"}}]}]),
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 42, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 9,
            semconv.AGL_RESPONSE_TOKEN_IDS: list(range(9)),
        }),
        span(2, 0, 0.5, 0.6, {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: "calculator",
            semconv.GEN_AI_TOOL_CALL_ID: "call-1", semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"expr": f"{index}*7"}),
            semconv.GEN_AI_TOOL_CALL_RESULT: str(index * 7),
        }),
        span(3, 0, 0.65, 1.1, {
            **chat,
            semconv.GEN_AI_INPUT_MESSAGES: _messages("user", f"What is {index} * 7?"),
            semconv.GEN_AI_OUTPUT_MESSAGES: _messages("assistant", f"The answer is {index * 7}."),
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 58, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        }),
        span(4, 0, 1.15, 1.16, {semconv.AGL_REWARD_VALUE: reward, semconv.AGL_REWARD_NAME: "exact_match"}),
    ]


def build_demo_store(store: LightningStore) -> dict[str, list[str]]:
    """Fill `store`; returns the rollout ids by agent, for the tests' expectations."""
    v1 = store.add_resources({"system_prompt": PromptTemplate(template="Solve: {question}")}, {"score": 0.41})
    store.add_resources({"system_prompt": PromptTemplate(template="Think step by step, then solve: {question}")}, {"score": 0.72})
    store.add_resources(
        {
            "policy": LLMEndpoint(endpoint="http://127.0.0.1:9/v1", model="tiny-policy", api_key="sk-secret", policy_version=3),
            "checkpoint": ModelCheckpoint(path="/tmp/ckpt/step-11", step=11),
        },
        {"step": 11},
    )

    store.upsert_run(Run(run_id=RUN_ID, algorithm="grpo", config={"lr": 1e-5, "group_size": 4}))
    for step in range(TRAIN_STEPS):
        store.add_metrics(RUN_ID, step, {
            "reward_mean": 0.2 + 0.05 * step, "loss": 1.5 / (step + 1), "kl": 0.01 * step, "tokens_per_s": 900.0 + step,
        })
        if step in HELDOUT_STEPS:
            store.add_metrics(RUN_ID, step, {
                "heldout_reward": 0.1 + 0.06 * step,  # over every eval task; then per eval task set
                "heldout_reward_sampled/math": 0.1 + 0.08 * step, "heldout_reward_sampled/coding": 0.1 + 0.04 * step,
                "heldout_n/math": 8, "heldout_n/coding": 8,
            })

    by_agent: dict[str, list[str]] = {a: [] for a in AGENTS}
    t0 = time.time() - 600
    for i in range(ROLLOUTS):
        agent = AGENTS[i % 2]
        store.enqueue_rollout(
            {"question": f"{i} * 7"}, "val" if i % 4 == 3 else "train",
            run_id=RUN_ID, resources_id=v1.resources_id, metadata={"agent": agent},
        )
        claimed = store.dequeue_rollout("worker-1")
        by_agent[agent].append(claimed.rollout_id)
        if i % 6 == 5:
            store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "failed", error="tool crashed")
            continue
        reward = 1.0 if i % 3 else 0.0
        store.add_spans(trace_spans(claimed.rollout_id, claimed.attempt.attempt_id, reward, t0 + i * 5, i))
        store.update_attempt(claimed.rollout_id, claimed.attempt.attempt_id, "succeeded")
    store.upsert_run(Run(run_id=RUN_ID, algorithm="grpo", status="finished", config={"lr": 1e-5, "group_size": 4}))

    store.upsert_run(Run(run_id=LIVE_RUN_ID, algorithm="apo"))
    store.add_metrics(LIVE_RUN_ID, 0, {"reward_mean": 0.3})
    return by_agent
