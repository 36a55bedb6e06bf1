"""Summaries of evaluation rollouts: mean reward and success rate, per task set and over all of them."""

from __future__ import annotations

from typing import Any, Sequence

from agl_core.training.tasksets import task_set_of
from agl_core.types import Rollout, Task

#: A rollout counts as a success when its reward reaches this value.
SUCCESS_THRESHOLD = 0.5
#: The name of the row that summarises every task set together.
ALL_SETS = "all"


def summarise(name: str, rollouts: Sequence[Rollout], n_tasks: int) -> dict[str, Any]:
    """``{"task_set", "n", "mean_reward", "success_rate"}`` over `n_tasks` tasks; rollouts that
    failed or never finished score zero."""
    rewards = [r.final_reward or 0.0 for r in rollouts if r.status == "succeeded"]
    return {
        "task_set": name,
        "n": n_tasks,
        "mean_reward": sum(rewards) / n_tasks if n_tasks else 0.0,
        "success_rate": sum(r >= SUCCESS_THRESHOLD for r in rewards) / n_tasks if n_tasks else 0.0,
    }


def summarise_sets(tasks: Sequence[Task], rollouts: Sequence[Rollout]) -> list[dict[str, Any]]:
    """One `summarise` row per task set (in the order the sets first appear in `tasks`), then
    the ``all`` row over every task; rollouts are matched to their set by task id."""
    set_of = {task.task_id: task_set_of(task) for task in tasks}
    sizes: dict[str, int] = {}
    for task in tasks:
        sizes[set_of[task.task_id]] = sizes.get(set_of[task.task_id], 0) + 1
    rows = [summarise(name, [r for r in rollouts if set_of.get(r.task_id or "") == name], n) for name, n in sizes.items()]
    return rows + [summarise(ALL_SETS, rollouts, len(tasks))]
