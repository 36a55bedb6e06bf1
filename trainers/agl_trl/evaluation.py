"""Held-out evaluation: the agent's accuracy on tasks it never trains on, sampled and greedy.

The metrics are flat (they go to the store, ``metrics.jsonl`` and ``heldout.json`` as they are):
``heldout_{reward,accuracy}_{sampled,greedy}`` over every eval task, the same keys with
``/<task set>`` for each set, and ``heldout_n/<task set>`` (its number of tasks).
"""

from __future__ import annotations

from typing import Any, Sequence

from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm
from agl_core.training.evaluation import ALL_SETS, summarise_sets
from agl_core.types import Task

from .sampling import endpoint_with
from .seeds import derive_seed


def evaluate(
    store: LightningStore,
    server: Any,
    tasks: Sequence[Task],
    *,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    run_id: str | None,
    timeout: float,
    label: str,
) -> dict[str, float]:
    """Held-out accuracy sampled at the training `temperature` and greedy (temperature 0)."""
    out: dict[str, float] = {}
    for mode, temp in (("sampled", temperature), ("greedy", 0.0)):
        endpoint = endpoint_with(server, temperature=temp, top_p=top_p, max_tokens=max_tokens, seed=derive_seed(seed, label, mode))
        resources_id = store.add_resources({"llm": endpoint}, metadata={"run_id": run_id, "eval": label}).resources_id
        rollouts = Algorithm.run_rollouts(
            store, tasks, resources_id=resources_id, mode="val", run_id=run_id, timeout=timeout, metadata={"eval": label}
        )
        for row in summarise_sets(tasks, rollouts):
            suffix = "" if row["task_set"] == ALL_SETS else f"/{row['task_set']}"
            out[f"heldout_reward_{mode}{suffix}"] = row["mean_reward"]
            out[f"heldout_accuracy_{mode}{suffix}"] = row["success_rate"]
            if suffix and mode == "greedy":
                out[f"heldout_n{suffix}"] = row["n"]
    out["heldout_reward"] = out["heldout_reward_sampled"]
    return out


def evaluate_heldout(cfg: Any, store: LightningStore, server: Any, tasks: Sequence[Task], run_id: str | None, label: str) -> dict[str, float]:
    """`evaluate` with a run config's sampling settings (``temperature``, ``top_p``,
    ``max_new_tokens``, ``seed``, ``rollout_timeout_s``): the same measure for every trainer."""
    return evaluate(
        store, server, tasks, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens,
        seed=derive_seed(cfg.seed, "heldout"), run_id=run_id, timeout=cfg.rollout_timeout_s, label=label,
    )  # fmt: skip
