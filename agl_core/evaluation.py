"""``agent-lightning eval``: run the agent on the eval task set and summarise the rewards."""

from __future__ import annotations

from typing import Any, Sequence

from agl_core.algorithm import Algorithm
from agl_core.config import Config, ConfigError
from agl_core.launch import build_agent, build_algorithm, build_tasks
from agl_core.runner import Runner
from agl_core.store.base import LightningStore
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


def evaluate_config(config: Config, store: LightningStore, *, checkpoint: str | None = None) -> list[dict[str, Any]]:
    tasks = build_tasks(config, "eval")
    if not tasks:
        raise ConfigError("environment.eval_tasks: no evaluation tasks")
    agent = build_agent(config)
    algorithm = build_algorithm(config)
    with algorithm.eval_resources(checkpoint) as resources:
        resources_id = store.add_resources(resources).resources_id if resources else None
        with Runner(agent, store, n_workers=config.training.n_workers):
            rollouts = Algorithm.run_rollouts(store, tasks, resources_id=resources_id, mode="test")
    return [summarise(config.environment.eval_tasks or "eval", rollouts, len(tasks))]
