"""Store objects shaped for the dashboard's JSON: summaries, rows and span details.

Everything here is a pure function of store objects, so the API module only fetches and pages.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

from agl_core.tracing import semconv
from agl_core.tracing.convert import parse_json_attr
from agl_core.training.adapters import merge_served_calls
from agl_core.types import Attempt, MetricRecord, ResourcesUpdate, Rollout, Run, Span

HELDOUT_REWARD = "heldout_reward"
PREVIEW_CHARS = 160
# Per-token arrays can hold thousands of numbers; the trace view shows their length instead.
TOKEN_ARRAY_KEYS = (semconv.AGL_PROMPT_TOKEN_IDS, semconv.AGL_RESPONSE_TOKEN_IDS, semconv.AGL_RESPONSE_LOGPROBS)
# Attributes the span detail shows in its own sections rather than in the raw attribute table.
STRUCTURED_KEYS = (
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_TOOL_DEFINITIONS,
    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
    semconv.GEN_AI_TOOL_CALL_RESULT,
)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- runs and metrics ------------------------------------------------------------------------------


def run_summary(run: Run, records: list[MetricRecord]) -> dict[str, Any]:
    heldout = [v for r in records if (v := r.metrics.get(HELDOUT_REWARD)) is not None]
    steps = {r.step for r in records}
    return {
        **run.model_dump(mode="json", exclude={"config"}),
        "steps": len(steps),
        "last_step": max(steps) if steps else None,
        "best_heldout_reward": max(heldout) if heldout else None,
    }


def metric_series(records: Iterable[MetricRecord]) -> dict[str, list[list[float]]]:
    """``{key: [[step, value], …]}`` in step order; a later record for the same step wins."""
    by_key: dict[str, dict[int, float]] = {}
    for record in records:
        for key, value in record.metrics.items():
            if value is not None:
                by_key.setdefault(key, {})[record.step] = value
    return {key: [[step, points[step]] for step in sorted(points)] for key, points in sorted(by_key.items())}


# --- rollouts ----------------------------------------------------------------------------------------


def attempt_duration(attempt: Attempt, now: float | None = None) -> float:
    end = attempt.end_time if attempt.end_time is not None else (now or time.time())
    return max(0.0, end - attempt.start_time)


def rollout_row(rollout: Rollout, last_attempt: Attempt | None) -> dict[str, Any]:
    return {
        "rollout_id": rollout.rollout_id,
        "status": rollout.status,
        "mode": rollout.mode,
        "agent": rollout.metadata.get("agent"),
        "run_id": rollout.run_id,
        "task_id": rollout.task_id,
        "resources_id": rollout.resources_id,
        "reward": rollout.final_reward,
        "num_attempts": rollout.num_attempts,
        "created_at": rollout.created_at,
        "updated_at": rollout.updated_at,
        "duration_s": attempt_duration(last_attempt) if last_attempt else None,
        "input": preview(rollout.input),
    }


# --- spans -------------------------------------------------------------------------------------------


def span_kind(span: Span) -> str:
    operation = span.attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if operation in (semconv.OP_CHAT, "text_completion", "generate_content"):
        return "llm"
    if operation == semconv.OP_INVOKE_AGENT or (not operation and semconv.GEN_AI_AGENT_NAME in span.attributes):
        return "agent"
    if operation == semconv.OP_EXECUTE_TOOL:
        return "tool"
    return {
        semconv.SPAN_REWARD: "reward",
        semconv.SPAN_MESSAGE: "message",
        semconv.SPAN_OBJECT: "object",
        semconv.SPAN_EXCEPTION: "exception",
        semconv.SPAN_ANNOTATION: "annotation",
    }.get(span.name, "other")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def trace_view(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """A rollout's spans as trace rows: one ``chat`` row per request, the serving side merged in."""
    return [span_view(s) for s in merge_served_calls(list(spans))]


def span_view(span: Span) -> dict[str, Any]:
    """A span with its GenAI content parsed out and its token arrays reduced to their lengths."""
    attrs = span.attributes
    token_ids = parse_json_attr(attrs.get(semconv.AGL_RESPONSE_TOKEN_IDS))
    raw = {}
    for key, value in attrs.items():
        if key in STRUCTURED_KEYS:
            continue
        raw[key] = f"[{len(value)} values]" if key in TOKEN_ARRAY_KEYS and isinstance(value, list) else value
    return {
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "trace_id": span.trace_id,
        "attempt_id": span.attempt_id,
        "name": span.name,
        "kind": span_kind(span),
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": span.status.model_dump(),
        "model": attrs.get(semconv.GEN_AI_RESPONSE_MODEL) or attrs.get(semconv.GEN_AI_REQUEST_MODEL),
        "agent": attrs.get(semconv.GEN_AI_AGENT_NAME),
        "tool": attrs.get(semconv.GEN_AI_TOOL_NAME),
        "input_tokens": _number(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        "output_tokens": _number(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        "reward": _number(attrs.get(semconv.AGL_REWARD_VALUE)),
        "response_token_ids": len(token_ids) if isinstance(token_ids, list) else None,
        "policy_version": _number(attrs.get(semconv.AGL_POLICY_VERSION)),
        "input_messages": parse_json_attr(attrs.get(semconv.GEN_AI_INPUT_MESSAGES)),
        "output_messages": parse_json_attr(attrs.get(semconv.GEN_AI_OUTPUT_MESSAGES)),
        "system_instructions": parse_json_attr(attrs.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)),
        "tool_arguments": parse_json_attr(attrs.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)),
        "tool_result": parse_json_attr(attrs.get(semconv.GEN_AI_TOOL_CALL_RESULT)),
        "attributes": raw,
        "events": [e.model_dump() for e in span.events],
    }


# --- resources -----------------------------------------------------------------------------------------


def resources_view(update: ResourcesUpdate) -> dict[str, Any]:
    """A resources version without secrets: endpoints lose their API key."""
    resources = {}
    for name, resource in update.resources.items():
        resources[name] = resource.model_dump(mode="json", exclude={"api_key"} if hasattr(resource, "api_key") else None)
    return {
        "resources_id": update.resources_id,
        "version": update.version,
        "created_at": update.created_at,
        "resources": resources,
        "metadata": update.metadata,
    }
