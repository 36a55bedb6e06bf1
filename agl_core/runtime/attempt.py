"""The life of one attempt of a rollout in this process, from its first span to its outcome.

Whoever runs an agent for a rollout (the runner for a claimed rollout, ``agl.tracer.trace`` for a
rollout of its own) enters :func:`attempt_lifecycle` around the agent's run. It

1. tells the store exporter which store the rollout's spans go to,
2. heartbeats, so the store does not take the attempt for dead,
3. runs the body in the rollout context under the root ``invoke_agent`` span,

and on exit pushes the spans into the store, records the attempt's outcome (succeeded, or failed
with ``"{Type}: {message}"`` when the body raised; the reward the body set) and forgets the store.
An exception of the body fails the root span and the attempt, then propagates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from opentelemetry.trace import Span

from agl_core.runtime.heartbeat import Heartbeat
from agl_core.runtime.telemetry import flush, register_rollout_store, release_rollout_store
from agl_core.store.base import LightningStore
from agl_core.tracing import genai
from agl_core.tracing.context import RolloutContext, rollout_context


@dataclass
class Attempt:
    """What the body of :func:`attempt_lifecycle` may record: the output and the final reward."""

    rollout: RolloutContext
    span: Span
    reward: float | None = None

    def set_output(self, output: Any) -> None:
        genai.record_output(self.span, output)


@contextlib.contextmanager
def attempt_lifecycle(
    store: LightningStore,
    rollout_id: str,
    attempt_id: str,
    *,
    agent: str,
    input: Any = None,
    resources_id: str | None = None,
    resources: dict[str, Any] | None = None,
    mode: str = "train",
    heartbeat_interval: float = 5.0,
) -> Iterator[Attempt]:
    """Run the body as attempt `attempt_id` of rollout `rollout_id` of `store` (see the module)."""
    rollout = RolloutContext(rollout_id, attempt_id, resources_id, dict(resources or {}), store, mode)
    attempt: Attempt | None = None
    status, error = "succeeded", None
    register_rollout_store(rollout_id, store)
    try:
        with rollout_context(rollout), Heartbeat(store, rollout_id, attempt_id, heartbeat_interval):
            with genai.agent_span(agent, input=input) as span:
                attempt = Attempt(rollout, span)
                yield attempt
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            flush()
        finally:
            release_rollout_store(rollout_id)
        reward = attempt.reward if attempt is not None else None
        store.update_attempt(rollout_id, attempt_id, status, reward=reward, error=error)
