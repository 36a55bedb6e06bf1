"""GRPO and RLOO as an `Algorithm` (config names ``grpo`` and ``rloo``).

The trainer loads the policy, serves it in this process (`agl_trl.policy.serving`) and publishes
``{"llm": endpoint}``; runners execute the unchanged agent against it and `serve` records every
call's token ids. One step:

1. pick ``batch_size`` tasks (seeded by ``(seed, step)``) and enqueue each ``group_size`` times;
2. wait at most ``rollout_timeout_s``: failed, crashed or timed-out rollouts are dropped from their
   group, the others train;
3. turn each finished rollout into triplets of the selected agents (``optimize``), taking the token
   ids `serve` recorded — never re-tokenized text; every LLM call of a rollout is one row carrying
   the rollout's advantage (multi-turn, tool-using agents included);
4. group-relative advantages per task (GRPO mean/std, RLOO leave-one-out: `agl_trl.losses`);
5. a clipped policy-gradient step (optional KL to the initial policy, ``beta``) while the server is
   paused, then a policy-version bump.

Per-step metrics go to the store (`add_metrics`), ``<output_dir>/metrics.jsonl`` and
``<output_dir>/training.log``; checkpoints to ``<output_dir>/checkpoints/step-N``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.training.algorithm import Algorithm
from agl_core.types import ModelCheckpoint, Rollout, Run, Task, new_id

from .checkpoints import prune_checkpoints, restore_rng, save_checkpoint
from .config import RLConfig
from .losses import (
    grpo_advantages,
    grpo_loss,
    rloo_advantages,
    rloo_loss,
    sequence_kl,
    token_logps,
)
from .policy import (
    derive_seed,
    endpoint_with,
    evaluate_heldout,
    load_checkpoint_model,
    load_policy,
    policy_to_train,
    serving,
)

log = logging.getLogger("agentlightning")

#: Rows (LLM calls) per forward/backward pass; bounds activation memory, not the batch.
MICRO_BATCH_ROWS = 32


@dataclass
class Batch:
    """What the loss sees: one row per LLM call of a kept rollout, in task order."""

    prompts: list[list[int]] = field(default_factory=list)
    completions: list[list[int]] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)
    #: index into `rewards` of each row's rollout
    owner: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    dropped: int = 0
    untrainable_calls: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(p) + len(c) for p, c in zip(self.prompts, self.completions))


def build_batch(
    store: LightningStore, rollouts: Sequence[Rollout], tasks: Sequence[Task], agents: Sequence[str] | None
) -> Batch:
    """Rows for the loss from finished rollouts, ordered by (task, repeat) whatever the finishing order.

    A rollout that failed, or succeeded without a reward, is dropped; a call whose span lacks token
    ids (the agent bypassed the trainer's endpoint) cannot be trained on and is counted, not guessed.
    """
    position = {t.task_id: i for i, t in enumerate(tasks)}
    kept = sorted(
        (r for r in rollouts if r.status == "succeeded" and r.final_reward is not None),
        key=lambda r: (position.get(r.task_id or "", len(position)), r.metadata.get("repeat", 0)),
    )
    batch = Batch()
    for rollout in kept:
        index = len(batch.rewards)
        batch.rewards.append(float(rollout.final_reward or 0.0))
        batch.groups.append(rollout.task_id or rollout.rollout_id)
        for triplet in rollout_triplets(store, rollout, agents=agents or None):
            if not triplet.prompt_token_ids or not triplet.response_token_ids:
                batch.untrainable_calls += 1
                continue
            batch.prompts.append(triplet.prompt_token_ids)
            batch.completions.append(triplet.response_token_ids)
            batch.agents.append(triplet.agent_name)
            batch.owner.append(index)
    return batch


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
        """Serve `checkpoint` (default: the configured model) at the training temperature."""
        cfg = self.config
        if checkpoint is not None:
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
        cfg = self.config
        if not train_tasks:
            raise ValueError("RL needs training tasks")
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
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
        store.upsert_run(Run(run_id=run_id, algorithm=cfg.algorithm, config=dataclasses.asdict(cfg), output_dir=str(out)))
        (out / "run.json").write_text(json.dumps({"run_id": run_id, "algorithm": cfg.algorithm, "store": store.url}))
        heldout_path = out / "heldout.json"
        heldout: dict[str, Any] = json.loads(heldout_path.read_text()) if state is not None and heldout_path.exists() else {}

        with _run_log(out) as log_path, serving(model, tokenizer, store, version=start) as server:
            ctx = _StepContext(store, server, model, tokenizer, optimizer, scheduler, reference, run_id)

            def held_out(label: str) -> dict[str, float]:
                return evaluate_heldout(cfg, store, server, eval_tasks, run_id, label)

            if eval_tasks and "before" not in heldout:
                heldout["before"] = held_out("before")
                store.add_metrics(run_id, start, heldout["before"])
                heldout_path.write_text(json.dumps(heldout, indent=2))
                log.info("held-out before: %s", _fmt(heldout["before"]))
            checkpoint = latest
            for step in _progress(range(start + 1, cfg.episodes + 1), cfg.episodes, start):
                metrics = self._step(step, ctx, train_tasks)
                last = step == cfg.episodes
                if eval_tasks and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
                    metrics.update(held_out("after" if last else f"step-{step}"))
                    if last:
                        heldout["after"] = {k: v for k, v in metrics.items() if k.startswith("heldout_")}
                        heldout_path.write_text(json.dumps(heldout, indent=2))
                if last or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    checkpoint = save_checkpoint(
                        out, step, model, tokenizer, optimizer, scheduler, {"run_id": run_id, "base_model": cfg.model}
                    )
                    endpoint = self._endpoint(server, derive_seed(cfg.seed, "published", step))
                    store.add_resources(
                        {"llm": endpoint, "checkpoint": ModelCheckpoint(path=str(checkpoint), step=step)},
                        metadata={"run_id": run_id, "step": step},
                    )
                store.add_metrics(run_id, step, metrics)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                if cfg.save_total_limit:
                    prune_checkpoints(out, cfg.save_total_limit)
                log.info("step %d/%d %s", step, cfg.episodes, _fmt(metrics))
        store.upsert_run(Run(run_id=run_id, algorithm=cfg.algorithm, config=dataclasses.asdict(cfg), output_dir=str(out), status="finished"))
        return _summary(run_id, cfg, out, store, checkpoint, heldout, log_path)

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
        batch = build_batch(ctx.store, rollouts, tasks, cfg.optimize)
        batch.dropped = len(tasks) * cfg.group_size - len(batch.rewards)
        self.last_batch = batch
        rewards = torch.tensor(batch.rewards, dtype=torch.float32)
        metrics: dict[str, Any] = {
            "step": step,
            "reward_mean": rewards.mean().item() if len(rewards) else 0.0,
            "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "zero_variance_groups": _zero_variance_fraction(batch),
            "rollouts": len(batch.rewards),
            "dropped_rollouts": batch.dropped,
            "rows": len(batch.prompts),
            "untrainable_calls": batch.untrainable_calls,
            "rollout_s": rollout_s,
        }
        started = time.perf_counter()
        with ctx.server.paused():
            metrics.update(self._update(ctx, batch, rewards))
        update_s = time.perf_counter() - started
        ctx.server.set_policy(version=step)
        metrics["update_s"] = update_s
        metrics["tokens_per_s"] = batch.tokens * cfg.updates_per_batch / update_s if batch.prompts else 0.0
        return metrics

    def _update(self, ctx: "_StepContext", batch: Batch, rewards: torch.Tensor) -> dict[str, Any]:
        """``updates_per_batch`` optimizer steps on the batch; returns loss, kl, clip_fraction."""
        cfg, model = self.config, ctx.model
        if not batch.prompts:
            return {"loss": 0.0, "kl": None, "clip_fraction": 0.0}
        temperature = cfg.temperature or 1.0
        chunks = [slice(i, i + MICRO_BATCH_ROWS) for i in range(0, len(batch.prompts), MICRO_BATCH_ROWS)]
        pad = ctx.tokenizer.pad_token_id

        def logps(net: Any, part: slice) -> tuple[torch.Tensor, torch.Tensor]:
            return token_logps(net, batch.prompts[part], batch.completions[part], pad_token_id=pad, temperature=temperature)

        need_old = cfg.updates_per_batch > 1 or (cfg.algorithm == "rloo" and cfg.beta)
        with torch.no_grad(), _no_kv_cache(model):
            old = [logps(model, c)[0] for c in chunks] if need_old else [None] * len(chunks)
            ref = [self._ref_logps(ctx, logps, c) for c in chunks] if cfg.beta else [None] * len(chunks)
        owner = torch.tensor(batch.owner)
        kl_value = None
        if cfg.algorithm == "rloo":
            if cfg.beta:
                row_kl = torch.cat([sequence_kl(o, r, _mask(batch.completions[c], o.size(1))) for o, r, c in zip(old, ref, chunks)])
                penalty = torch.zeros_like(rewards).index_add_(0, owner, row_kl)
                rewards = rewards - cfg.beta * penalty
                kl_value = row_kl.mean().item()
            advantages = rloo_advantages(rewards, batch.groups)[owner]
        else:
            advantages = grpo_advantages(rewards, batch.groups, scale_rewards=cfg.scale_rewards)[owner]
        n_rows, n_tokens = len(batch.prompts), sum(len(c) for c in batch.completions)
        model.train()
        with _no_kv_cache(model):
            total, clipped, kls = self._optimize(ctx, batch, chunks, logps, old, ref, advantages, n_rows, n_tokens)
        model.eval()
        if kls:
            kl_value = sum(kls) / n_tokens
        return {"loss": total, "kl": kl_value, "clip_fraction": clipped / n_tokens}

    def _optimize(
        self, ctx: "_StepContext", batch: Batch, chunks: list[slice], logps: Any, old: list[Any], ref: list[Any],
        advantages: torch.Tensor, n_rows: int, n_tokens: int,
    ) -> tuple[float, float, list[float]]:  # fmt: skip
        cfg, model = self.config, ctx.model
        for _ in range(cfg.updates_per_batch):
            total, clipped, kls = 0.0, 0.0, []
            for chunk, old_c, ref_c in zip(chunks, old, ref):
                new, mask = logps(model, chunk)
                if cfg.algorithm == "rloo":
                    loss, m = rloo_loss(new, old_c, advantages[chunk], mask, epsilon_low=cfg.clip_eps, epsilon_high=cfg.clip_eps_high)
                    scale = mask.size(0) / n_rows
                else:
                    loss, m = grpo_loss(
                        new, old_c, advantages[chunk], mask, ref_logps=ref_c, beta=cfg.beta, epsilon_low=cfg.clip_eps,
                        epsilon_high=cfg.clip_eps_high, loss_type=cfg.loss_type, num_items=n_tokens,
                        max_completion_length=cfg.max_new_tokens,
                    )  # fmt: skip
                    scale = 1.0 if cfg.loss_type == "dapo" else mask.size(0) / n_rows
                    if "kl" in m:
                        kls.append(m["kl"] * mask.sum().item())
                (loss * scale).backward()
                total += loss.item() * scale
                clipped += m["clip_ratio"] * mask.sum().item()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
            ctx.optimizer.step()
            ctx.scheduler.step()
            ctx.optimizer.zero_grad(set_to_none=True)
        return total, clipped, kls

    @staticmethod
    def _ref_logps(ctx: "_StepContext", logps: Any, chunk: slice) -> torch.Tensor:
        if ctx.reference is not None:
            return logps(ctx.reference, chunk)[0]
        with ctx.model.disable_adapter():  # LoRA: the base model is the reference
            return logps(ctx.model, chunk)[0]


def _mask(completions: list[list[int]], width: int) -> torch.Tensor:
    """Completion-token mask of right-padded completions (as `token_logps` builds it)."""
    lengths = torch.tensor([len(c) for c in completions])
    return (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).float()


@contextlib.contextmanager
def _no_kv_cache(model: Any) -> Iterator[None]:
    """Training forwards need no KV cache; building one costs time (the server asks for its own)."""
    config = getattr(model, "config", None)
    previous = getattr(config, "use_cache", None)
    if config is not None:
        config.use_cache = False
    try:
        yield
    finally:
        if config is not None:
            config.use_cache = previous


@dataclass
class _StepContext:
    store: LightningStore
    server: Any
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    reference: Any
    run_id: str


def _zero_variance_fraction(batch: Batch) -> float:
    by_group: dict[str, set[float]] = {}
    for group, reward in zip(batch.groups, batch.rewards):
        by_group.setdefault(group, set()).add(reward)
    return sum(len(v) == 1 for v in by_group.values()) / len(by_group) if by_group else 0.0


def _fmt(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if k != "step")


def _progress(steps: range, total: int, done: int) -> Iterator[int]:
    """A rich progress bar over the steps (plain iteration when rich is absent)."""
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        yield from steps
        return
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("steps", total=total, completed=done)
        for step in steps:
            yield step
            progress.advance(task)


@contextlib.contextmanager
def _run_log(out: Path) -> Iterator[str]:
    """Mirror the ``agentlightning`` log (at INFO) into ``<output_dir>/training.log`` during the run."""
    path = out / "training.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield str(path)
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous)


def _summary(
    run_id: str, cfg: Any, out: Path, store: LightningStore, checkpoint: Path | None, heldout: dict[str, Any], log_path: str
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "run_id": run_id,
        "algorithm": cfg.algorithm,
        "output_dir": str(out),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "metrics": str(out / "metrics.jsonl"),
        "log": log_path,
        "store": store.url,
        "heldout": heldout,
    }
    for when in ("before", "after"):
        for mode in ("sampled", "greedy"):
            value = heldout.get(when, {}).get(f"heldout_accuracy_{mode}")
            if value is not None:
                summary[f"{mode}_{when}"] = value
    return summary
