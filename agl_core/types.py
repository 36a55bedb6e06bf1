"""Pydantic types shared by the store, the runner, the adapters and the trainers."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

RolloutStatus = Literal["queuing", "running", "succeeded", "failed", "cancelled", "requeuing"]
AttemptStatus = Literal["running", "succeeded", "failed", "timeout"]

TERMINAL_ROLLOUT_STATUSES: tuple[str, ...] = ("succeeded", "failed", "cancelled")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def check_reward(value: Any) -> float:
    """The one reward rule: a finite int or float (not a bool); anything else is a ``ValueError``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"reward must be a finite number, got {value!r}")


class Task(BaseModel):
    """One unit of work for an agent: its input and, optionally, what a grader expects."""

    task_id: str = Field(default_factory=lambda: new_id("task"))
    input: Any
    expected: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class RolloutRequest(BaseModel):
    """One rollout to enqueue (`LightningStore.enqueue_rollouts`); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    input: Any = None
    mode: str = "train"
    task_id: str | None = None
    resources_id: str | None = None
    run_id: str | None = None
    #: How many attempts the rollout may take before it fails (a failed or timed-out attempt requeues it).
    max_attempts: int = Field(default=1, ge=1)
    #: Longest an attempt may run (seconds) before it times out, heartbeat or not.
    timeout_s: float | None = Field(default=None, gt=0)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Attempt(BaseModel):
    attempt_id: str
    rollout_id: str
    sequence: int
    status: AttemptStatus = "running"
    worker_id: str | None = None
    start_time: float
    end_time: float | None = None
    last_heartbeat: float | None = None
    error: str | None = None


class Rollout(BaseModel):
    rollout_id: str
    input: Any = None
    mode: str = "train"
    status: RolloutStatus = "queuing"
    task_id: str | None = None
    resources_id: str | None = None
    run_id: str | None = None
    final_reward: float | None = None
    max_attempts: int = 1
    timeout_s: float | None = None
    num_attempts: int = 0
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AttemptedRollout(Rollout):
    """What `dequeue_rollout` hands to a worker: the rollout and the attempt it now owns."""

    attempt: Attempt


class SpanEvent(BaseModel):
    name: str
    timestamp: float
    attributes: dict[str, Any] = Field(default_factory=dict)


StatusCode = Literal["UNSET", "OK", "ERROR"]


class SpanStatus(BaseModel):
    code: StatusCode = "UNSET"
    description: str | None = None


class Span(BaseModel):
    """A finished span as the store keeps it (ids are lowercase hex, times are epoch seconds)."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    name: str
    start_time: float
    end_time: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)
    status: SpanStatus = Field(default_factory=SpanStatus)
    resource: dict[str, Any] = Field(default_factory=dict)
    rollout_id: str | None = None
    attempt_id: str | None = None
    sequence_id: int = 0


# --- Resources ---------------------------------------------------------------------------------


class PromptTemplate(BaseModel):
    resource_type: Literal["prompt_template"] = "prompt_template"
    template: str
    engine: Literal["f-string", "jinja", "plain"] = "f-string"

    def format(self, **kwargs: Any) -> str:
        if self.engine == "plain":
            return self.template
        return self.template.format(**kwargs)


class LLMEndpoint(BaseModel):
    resource_type: Literal["llm"] = "llm"
    endpoint: str
    model: str
    api_key: str | None = None
    sampling_parameters: dict[str, Any] = Field(default_factory=dict)
    policy_version: int | None = None
    #: True when the server is our own `serve`, which accepts rollout-scoped base URLs.
    rollout_scoped: bool = False

    def base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:
        """The endpoint, scoped to the rollout when the server supports it (`rollout_scoped`).

        Calls to the rollout-scoped URL are attributed to the rollout even when the agent is
        not instrumented at all.
        """
        root = self.endpoint.rstrip("/")
        if self.rollout_scoped and rollout_id and attempt_id and root.endswith("/v1"):
            return f"{root[:-3]}/rollout/{rollout_id}/attempt/{attempt_id}/v1"
        return root


class ModelCheckpoint(BaseModel):
    resource_type: Literal["checkpoint"] = "checkpoint"
    path: str
    step: int | None = None


Resource = Union[PromptTemplate, LLMEndpoint, ModelCheckpoint]


class ResourcesUpdate(BaseModel):
    """One version of the named resources that rollouts run with."""

    resources_id: str
    version: int
    created_at: float
    resources: dict[str, Resource] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


# --- Training data -----------------------------------------------------------------------------


class Triplet(BaseModel):
    """One LLM call of a rollout, as a trainer sees it: prompt, response, reward."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rollout_id: str
    span_id: str
    agent_name: str | None = None
    prompt_messages: list[dict[str, Any]] = Field(default_factory=list)
    response_messages: list[dict[str, Any]] = Field(default_factory=list)
    prompt_token_ids: list[int] | None = None
    response_token_ids: list[int] | None = None
    response_logprobs: list[float] | None = None
    policy_version: int | None = None
    reward: float | None = None
    tools: list[dict[str, Any]] | None = None


# --- Runs and metrics (for the trainers and the dashboard) -------------------------------------


class Run(BaseModel):
    run_id: str
    algorithm: str
    status: Literal["running", "finished", "failed"] = "running"
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    output_dir: str | None = None


class MetricRecord(BaseModel):
    run_id: str
    step: int
    metrics: dict[str, float | None]
    timestamp: float = Field(default_factory=time.time)
