"""``agent-lightning eval``: run the agent on the eval task sets and summarise the rewards of each."""

from __future__ import annotations

from typing import Any

from agl_core.cli.config import Config, ConfigError
from agl_core.cli.launch import build_agent, build_algorithm, build_tasks
from agl_core.runtime.runner import Runner
from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm
from agl_core.training.evaluation import summarise_sets


def evaluate_config(config: Config, store: LightningStore, *, checkpoint: str | None = None) -> list[dict[str, Any]]:
    """One row per eval task set (``task_set``, ``n``, ``mean_reward``, ``success_rate``), then ``all``."""
    tasks = build_tasks(config, "eval")
    if not tasks:
        raise ConfigError("environment.eval_tasks: no evaluation tasks")
    agent = build_agent(config)
    algorithm = build_algorithm(config)
    with algorithm.eval_resources(checkpoint) as resources:
        resources_id = store.add_resources(resources).resources_id if resources else None
        with Runner(agent, store, n_workers=config.training.n_workers):
            rollouts = Algorithm.run_rollouts(store, tasks, resources_id=resources_id, mode="test")
    return summarise_sets(tasks, rollouts)
