"""GRPO and RLOO as an `Algorithm` (config names ``grpo`` and ``rloo``).

The trainer loads the policy, serves it in this process (`agl_trl.sampling.serving`) and publishes
``{"llm": endpoint}``; runners execute the unchanged agent against it and `serve` records every
call's token ids. One step:

1. pick ``batch_size`` tasks (seeded by ``(seed, step)``) and enqueue each ``group_size`` times;
2. wait at most ``rollout_timeout_s``: failed, crashed or timed-out rollouts are dropped from their
   group, the others train;
3. turn each finished rollout into rows of the selected agents' calls (``optimize``), taking the
   token ids and log-probs `serve` recorded — never re-tokenized text; an agent's multi-turn calls
   that extend each other are one row, the tokens between them masked (``aggregation``,
   `agl_trl.trajectories`); a step where no rollout finished stops the run with the first failure;
4. group-relative advantages per task (GRPO mean/std, RLOO leave-one-out: `agl_trl.objectives`) of
   each call's return (``reward_policy``);
5. a clipped policy-gradient step (optional KL to the initial policy, ``beta``) while the server is
   paused, then a policy-version bump.

Per-step metrics go to the store (`add_metrics`), ``<output_dir>/metrics.jsonl`` and
``<output_dir>/training.log`` (`agl_trl.callbacks`); checkpoints to ``<output_dir>/checkpoints/step-N``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from agl_core.cli.config import ConfigError
from agl_core.store.base import LightningStore
from agl_core.training.algorithm import Algorithm
from agl_core.types import ModelCheckpoint, Task, new_id

from .callbacks import TrainerState, default_callbacks
from .checkpoints import latest_checkpoint, restore_rng, save_checkpoint
from .config import RLConfig
from .evaluation import evaluate_heldout
from .loading import load_checkpoint_model, load_policy, policy_to_train
from .objectives import objective_for
from .run_record import RunRecord, with_run_folder
from .sampling import endpoint_with, serving
from .seeds import derive_seed, seed_everything
from .trajectories import Batch, build_batch
from .update import PolicyUpdate

log = logging.getLogger("agentlightning")

class RLAlgorithm(Algorithm):
    """GRPO or RLOO (``config.algorithm``) on a locally served policy; see the module docstring."""

    def __init__(self, config: RLConfig, *, resume: bool = False) -> None:
        self.config = config
        self.resume = resume
        self.name = config.algorithm
        #: the last batch the loss saw (for inspection and tests)
        self.last_batch: Batch | None = None

    # --- evaluation of a checkpoint (``agent-lightning eval``) --------------------------------
    @contextlib.contextmanager
    def eval_resources(self, checkpoint: str | None = None) -> Iterator[dict[str, Any]]:
        """Serve `checkpoint` (default: the configured model) at the training temperature; a run
        folder means its latest checkpoint."""
        cfg = self.config
        if checkpoint is not None:
            latest = latest_checkpoint(checkpoint) if (Path(checkpoint) / "checkpoints").is_dir() else None
            checkpoint = str(latest or checkpoint)
            model, tokenizer = load_checkpoint_model(checkpoint)
        else:
            model, tokenizer = load_policy(cfg.model)
        seed = derive_seed(cfg.seed, "eval", checkpoint)
        with serving(model.eval(), tokenizer, None) as server:
            endpoint = self._endpoint(server, seed)
            server.request_hook.fixed = endpoint.sampling_parameters
            yield {"llm": endpoint}

    def _endpoint(self, server: Any, seed: int) -> Any:
        cfg = self.config
        return endpoint_with(server, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=seed)

    # --- training ------------------------------------------------------------------------------
    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        if not train_tasks:
            raise ValueError("RL needs training tasks")
        cfg = self.config = with_run_folder(self.config, self.agent_name, store, resume=self.resume)
        out = Path(str(cfg.output_dir))
        seed_everything(cfg.seed)
        model, tokenizer, state, latest = policy_to_train(cfg, out, self.resume)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)  # constant, as documented
        start, run_id = 0, new_id("run")
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            restore_rng(state["rng"])
            start, run_id = int(state["step"]), str(state["run_id"])
            log.info("resuming run %s from %s (step %d)", run_id, latest, start)
        reference = load_policy(cfg.model)[0].eval() if cfg.beta and not cfg.lora else None
        record = RunRecord(store, cfg, run_id, resumed=state is not None)
        record.begin()
        progress = TrainerState(run_id, out, cfg.episodes, start)
        callbacks = default_callbacks(store, cfg.save_total_limit)
        with callbacks.training(progress), serving(model, tokenizer, store, version=start) as server:
            update = PolicyUpdate(cfg, objective_for(cfg), model, tokenizer, optimizer, scheduler, reference)
            ctx = _StepContext(store, server, update, run_id)

            def held_out(label: str) -> dict[str, float]:
                log.info("held-out %s: evaluating (n=%d)", label, len(eval_tasks))  # a while: say so
                return evaluate_heldout(cfg, store, server, eval_tasks, run_id, label)

            if eval_tasks and record.needs("before"):
                record.record_heldout("before", held_out("before"), step=start)
            checkpoint = latest
            for step in range(start + 1, cfg.episodes + 1):
                metrics = self._step(step, ctx, train_tasks)
                last = step == cfg.episodes
                if eval_tasks and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
                    metrics.update(held_out("after" if last else f"step-{step}"))
                    if last:
                        record.record_heldout("after", metrics)
                if last or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    checkpoint = save_checkpoint(
                        out, step, model, tokenizer, optimizer, scheduler, {"run_id": run_id, "base_model": cfg.model}
                    )
                    endpoint = self._endpoint(server, derive_seed(cfg.seed, "published", step))
                    store.add_resources(
                        {"llm": endpoint, "checkpoint": ModelCheckpoint(path=str(checkpoint), step=step)},
                        metadata={"run_id": run_id, "step": step},
                    )
                progress.step = step
                callbacks.on_log(progress, metrics)
                callbacks.on_step_end(progress)
        return record.finish(checkpoint)

    def _step(self, step: int, ctx: "_StepContext", train_tasks: Sequence[Task]) -> dict[str, Any]:
        cfg = self.config
        rng = random.Random(derive_seed(cfg.seed, "tasks", step))
        tasks = rng.sample(list(train_tasks), cfg.batch_size) if len(train_tasks) >= cfg.batch_size else [rng.choice(train_tasks) for _ in range(cfg.batch_size)]
        # Distinct task ids per step keep groups apart when a short task list repeats a task.
        tasks = [t if i == 0 or t.task_id not in {u.task_id for u in tasks[:i]} else t.model_copy(update={"task_id": f"{t.task_id}#{i}"}) for i, t in enumerate(tasks)]
        resources_id = ctx.store.add_resources(
            {"llm": self._endpoint(ctx.server, derive_seed(cfg.seed, "train", step))},
            metadata={"run_id": ctx.run_id, "step": step},
        ).resources_id
        started = time.perf_counter()
        rollouts = self.run_rollouts(
            ctx.store, tasks, resources_id=resources_id, mode="train", repeats=cfg.group_size,
            run_id=ctx.run_id, timeout=cfg.rollout_timeout_s, metadata={"step": step},
        )  # fmt: skip
        rollout_s = time.perf_counter() - started
        batch = build_batch(
            ctx.store, rollouts, tasks, cfg.optimize, aggregation=cfg.aggregation, reward_policy=cfg.reward_policy, gamma=cfg.gamma
        )
        batch.dropped = len(tasks) * cfg.group_size - len(batch.rewards)
        if not batch.rewards:
            raise ConfigError(_nothing_finished(ctx.store, step, rollouts, cfg.rollout_timeout_s))
        self.last_batch = batch
        rewards = torch.tensor(batch.rewards, dtype=torch.float32)
        metrics: dict[str, Any] = {
            "step": step,
            "reward_mean": rewards.mean().item() if len(rewards) else 0.0,
            "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "zero_variance_groups": batch.zero_variance_fraction(),
            "rollouts": len(batch.rewards),
            "dropped_rollouts": batch.dropped,
            "rows": len(batch.prompts),
            "trajectory_rows": batch.trajectory_rows,
            "transition_rows": batch.transition_rows,
            "prefix_breaks": batch.prefix_breaks,
            "untrainable_calls": batch.untrainable_calls,
            "rollout_s": rollout_s,
        }
        started = time.perf_counter()
        with ctx.server.paused():
            metrics.update(ctx.update(batch))
        update_s = time.perf_counter() - started
        ctx.server.set_policy(version=step)
        metrics["update_s"] = update_s
        metrics["tokens_per_s"] = batch.tokens * cfg.updates_per_batch / update_s if batch.prompts else 0.0
        return metrics


def _nothing_finished(store: LightningStore, step: int, rollouts: Sequence[Any], timeout_s: float) -> str:
    """One line for a step with nothing to train on: the first failed attempt's error, else why."""
    errors = []
    for rollout in rollouts:
        attempts = store.query_attempts(rollout.rollout_id)
        errors.append((attempts[-1].error or "").strip() if attempts else "")
    failure = next((e for e in errors if e and e != "cancelled"), None)
    if failure is not None:
        return f"step {step}: no rollout finished; the first failure: {failure.splitlines()[0]}"
    if "cancelled" in errors or len(rollouts) == 0:
        return f"step {step}: no rollout finished within rollout_timeout_s ({timeout_s:g} s)"
    return f"step {step}: no rollout finished with a reward (the agent returned none and emitted none)"


@dataclass
class _StepContext:
    store: LightningStore
    server: Any
    update: PolicyUpdate
    run_id: str
