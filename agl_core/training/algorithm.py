"""The `Algorithm` interface and `fit()`, which runs an algorithm with a runner beside it.

An algorithm publishes resources, enqueues rollouts, waits for them, reads their spans through
the adapters and publishes better resources. Rollouts are executed by a `Runner` (threads here,
or processes/machines pointed at the same store).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Iterator, Sequence

from agl_core.runtime.runner import Runner
from agl_core.store.base import LightningStore
from agl_core.types import Rollout, RolloutRequest, Run, Task, new_id

log = logging.getLogger("agentlightning")


class Algorithm:
    """Base class of trainers. Subclasses set `name` and implement `run`."""

    name: str = "algorithm"
    #: The name of the agent trained; `fit` sets it (trainers name their default run folder after it).
    agent_name: str = "agent"

    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        """Train; return a summary (e.g. before/after held-out reward)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def eval_resources(self, checkpoint: str | None = None) -> Iterator[dict[str, Any]]:
        """The resources to evaluate with (e.g. an endpoint serving `checkpoint`); {} by default."""
        if checkpoint is not None:
            raise ValueError(f"{self.name} does not evaluate checkpoints")
        yield {}

    # --- helpers shared by trainers ------------------------------------------------------------
    @staticmethod
    def run_rollouts(
        store: LightningStore,
        tasks: Sequence[Task],
        *,
        resources_id: str | None,
        mode: str = "train",
        repeats: int = 1,
        run_id: str | None = None,
        timeout: float | None = None,
        max_attempts: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> list[Rollout]:
        """Enqueue every task `repeats` times and wait; returns the finished rollouts in order.

        Rollouts that are still unfinished after `timeout` are cancelled and left out, so one stuck
        agent cannot stall a batch.
        """
        items = [
            RolloutRequest(
                input=task.input,
                mode=mode,
                task_id=task.task_id,
                resources_id=resources_id,
                run_id=run_id,
                max_attempts=max_attempts,
                timeout_s=timeout,
                metadata={**(metadata or {}), "repeat": r},
            )
            for task in tasks
            for r in range(repeats)
        ]
        enqueued = store.enqueue_rollouts(items)
        ids = [r.rollout_id for r in enqueued]
        finished = store.wait_for_rollouts(ids, timeout=None if timeout is None else timeout * 2 + 30)
        done = {r.rollout_id for r in finished}
        for rollout_id in ids:
            if rollout_id not in done:
                store.cancel_rollout(rollout_id)
        return finished

    @staticmethod
    def start_run(store: LightningStore, algorithm: str, config: dict[str, Any], output_dir: str | None) -> Run:
        return store.upsert_run(
            Run(run_id=new_id("run"), algorithm=algorithm, config=config, output_dir=output_dir)
        )


def fit(
    algorithm: Algorithm,
    agent: Any,
    store: LightningStore,
    train_tasks: Sequence[Task],
    eval_tasks: Sequence[Task] = (),
    *,
    n_workers: int = 1,
    runners: str = "local",
) -> dict[str, Any]:
    """Run `algorithm` with `n_workers` runner threads executing `agent` on the same store.

    ``runners="external"`` starts none: runners elsewhere (``agent-lightning runner``) claim the
    rollouts from `store`, which must be one they reach.
    """
    if runners not in ("local", "external"):
        raise ValueError(f"runners: use 'local' or 'external', not {runners!r}")
    started = time.monotonic()
    runner = Runner(agent, store, n_workers=n_workers)
    algorithm.agent_name = runner.agent.name
    with runner if runners == "local" else contextlib.nullcontext():
        summary = algorithm.run(store, list(train_tasks), list(eval_tasks))
    log.info("%s finished in %.1f s", algorithm.name, time.monotonic() - started)
    return summary
