"""Summaries of evaluation rollouts: mean reward and success rate over a task set."""

from __future__ import annotations

from typing import Any, Sequence

from agl_core.types import Rollout

#: A rollout counts as a success when its reward reaches this value.
SUCCESS_THRESHOLD = 0.5


def summarise(name: str, rollouts: Sequence[Rollout], n_tasks: int) -> dict[str, Any]:
    rewards = [r.final_reward if r.final_reward is not None else 0.0 for r in rollouts]
    rewards += [0.0] * (n_tasks - len(rollouts))  # failed or lost rollouts score zero
    n = len(rewards)
    return {
        "task_set": name,
        "n": n,
        "mean_reward": sum(rewards) / n if n else 0.0,
        "success_rate": sum(r >= SUCCESS_THRESHOLD for r in rewards) / n if n else 0.0,
    }
