"""Supervised fine-tuning from traces (config name ``sft``), with TRL's ``SFTTrainer``.

Data comes from one of three places, in this order:

- ``dataset``: a JSONL file of conversations (``{"messages": [...], "tools": [...]}`` per line),
  trained on assistant tokens only (the chat template's ``{% generation %}`` marks them);
- ``traces_run``: the succeeded rollouts of an earlier run whose reward reaches ``reward_threshold``;
- otherwise the trainer collects them itself: each round runs the agent ``samples_per_task`` times
  per training task on the current policy and keeps the good rollouts (rejection sampling / expert
  iteration), for ``episodes`` rounds.

Traces train on the token ids `serve` recorded, one example per LLM call of the selected agents:
``input_ids`` = prompt + response ids and ``completion_mask`` = 1 on the response only, handed to
TRL pre-tokenized (``completion_only_loss=True``), so nothing is re-tokenized.

Every round ends with a checkpoint (``<output_dir>/checkpoints/step-N``, N = round); ``--resume``
continues after the last finished round and ends where an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.training.algorithm import Algorithm
from agl_core.types import ModelCheckpoint, Rollout, Task, new_id

from .callbacks import TrainerState, default_callbacks
from .checkpoints import restore_rng, save_checkpoint
from .evaluation import evaluate_heldout
from .loading import policy_to_train
from .run_record import RunRecord, with_run_folder
from .sampling import endpoint_with, serving
from .seeds import derive_seed

log = logging.getLogger("agentlightning")


@dataclass
class SFTConfig:
    """One SFT run. Names follow TRL's ``SFTConfig`` where an equivalent exists."""

    model: str = ""
    """Path or hub name of the model; empty (or ``tiny``) means the tiny model built on this machine."""
    algorithm: str = "sft"
    episodes: int = 1
    """Collect-then-train rounds when traces are collected here (a dataset or ``traces_run`` is one round)."""
    dataset: str | None = None
    """JSONL of conversations to train on instead of traces."""
    traces_run: str | None = None
    """Run id whose rollouts are the traces (instead of collecting new ones)."""
    reward_threshold: float = 1.0
    """A trace is kept when its rollout succeeded with at least this reward."""
    samples_per_task: int = 4
    """Rollouts per training task when collecting traces."""
    optimize: list[str] = field(default_factory=list)
    """Agents whose LLM calls become examples; empty means every call."""
    epochs: float = 1.0
    """Passes over each round's examples (TRL's ``num_train_epochs``)."""
    batch_size: int = 8
    """Examples per optimizer step (TRL's ``per_device_train_batch_size``)."""
    learning_rate: float = 1e-4
    max_length: int = 1024
    """Examples are truncated to this many tokens."""
    temperature: float = 1.0
    """Sampling temperature of collected traces and of the sampled held-out accuracy."""
    top_p: float = 1.0
    max_new_tokens: int = 64
    output_dir: str | None = None
    """Run folder (checkpoints, ``metrics.jsonl``, ``training.log``, ``heldout.json``, ``run.json``).
    Defaults to ``$AGL_HOME/runs/<agent>-sft/``, from Python as from ``agent-lightning train``."""
    save_total_limit: int | None = None
    """Keep only the newest N round checkpoints, plus the one with the best held-out reward; None keeps all."""
    seed: int = 0
    rollout_timeout_s: float = 120.0
    lora: bool = False
    lora_rank: int = 16

    def __post_init__(self) -> None:
        for name in ("episodes", "samples_per_task", "batch_size", "max_length", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError("save_total_limit must be at least 1 (or None to keep every checkpoint)")


def trace_examples(
    store: LightningStore, rollouts: Sequence[Rollout], *, threshold: float, agents: Sequence[str] | None
) -> list[dict[str, list[int]]]:
    """Pre-tokenized examples from the good rollouts' recorded token ids (response tokens masked in)."""
    examples = []
    for rollout in rollouts:
        if rollout.status != "succeeded" or rollout.final_reward is None or rollout.final_reward < threshold:
            continue
        for t in rollout_triplets(store, rollout, agents=agents or None):
            if t.prompt_token_ids and t.response_token_ids:
                ids = t.prompt_token_ids + t.response_token_ids
                mask = [0] * len(t.prompt_token_ids) + [1] * len(t.response_token_ids)
                examples.append({"input_ids": ids, "completion_mask": mask})
    return examples


def conversation_examples(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                    raise ValueError(f"{path}:{lineno}: expected an object with a 'messages' list")
                rows.append({k: row[k] for k in ("messages", "tools") if row.get(k)})
    return rows


def fine_tune(model: Any, tokenizer: Any, examples: list[dict[str, Any]], cfg: SFTConfig, out: Path) -> float:
    """One TRL ``SFTTrainer`` pass over `examples`; returns the mean training loss."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer as TRLSFTTrainer

    conversational = "messages" in examples[0]
    args = TRLSFTConfig(
        output_dir=str(out / "trl"),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        max_length=cfg.max_length,
        completion_only_loss=True,
        assistant_only_loss=conversational,
        seed=cfg.seed,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        # TRL defaults to bf16 autocast, on CPU too; the model's own dtype decides instead (float32 on
        # CPU, bfloat16 on CUDA: see `load_model`), as in the RL trainers
        bf16=False,
        dataloader_num_workers=0,
    )
    if conversational and all("tools" not in e for e in examples):
        examples = [{"messages": e["messages"]} for e in examples]
    trainer = TRLSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
    result = trainer.train()
    # The model serves next, is saved, and may train again next round: take off what TRL put on it
    # (gradient checkpointing and use_cache=False), so that every round starts from the same plain
    # model a resumed run loads from its checkpoint.
    if getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    model.config.use_cache = True
    model.eval()
    return float(result.training_loss)


class SFTAlgorithm(Algorithm):
    name = "sft"

    def __init__(self, config: SFTConfig, *, resume: bool = False) -> None:
        self.config = config
        self.resume = resume

    def run(self, store: LightningStore, train_tasks: Sequence[Task], eval_tasks: Sequence[Task]) -> dict[str, Any]:
        cfg = self.config = with_run_folder(self.config, self.agent_name, store, resume=self.resume)
        out = Path(str(cfg.output_dir))
        torch.manual_seed(cfg.seed)
        fixed_data = cfg.dataset is not None or cfg.traces_run is not None
        rounds = 1 if fixed_data else cfg.episodes
        if not fixed_data and not train_tasks:
            raise ValueError("SFT needs a dataset, a traces_run, or training tasks to collect traces on")
        model, tokenizer, state, checkpoint = policy_to_train(cfg, out, self.resume)
        start, run_id = 0, new_id("run")
        if state is not None:  # every round ends with a checkpoint: resume after the last finished one
            restore_rng(state["rng"])
            start, run_id = int(state["step"]), str(state["run_id"])
            log.info("resuming run %s from %s (round %d of %d)", run_id, checkpoint, start, rounds)
        record = RunRecord(store, cfg, run_id, resumed=state is not None)
        record.begin()
        progress = TrainerState(run_id, out, rounds, start, unit="round")
        callbacks = default_callbacks(store, cfg.save_total_limit)
        with callbacks.training(progress), serving(model, tokenizer, store, version=start) as server:

            def held_out(label: str) -> dict[str, float]:
                log.info("held-out %s: evaluating (n=%d)", label, len(eval_tasks))  # a while: say so
                return evaluate_heldout(cfg, store, server, eval_tasks, run_id, label)

            if eval_tasks and record.needs("before"):
                record.record_heldout("before", held_out("before"), step=start)
            for step in range(start + 1, rounds + 1):
                examples, reward_mean = self._examples(store, server, train_tasks, run_id, step)
                metrics: dict[str, Any] = {"step": step, "reward_mean": reward_mean, "examples": len(examples), "kl": None}
                if examples:
                    with server.paused():
                        metrics["loss"] = fine_tune(model, tokenizer, examples, cfg, out)
                    server.set_policy(version=step)
                else:
                    log.warning("round %d: no example reached reward %.3g; nothing to train on", step, cfg.reward_threshold)
                    metrics["loss"] = None
                if eval_tasks and step == rounds:
                    metrics.update(held_out("after"))
                    record.record_heldout("after", metrics)
                checkpoint = save_checkpoint(out, step, model, tokenizer, extra={"run_id": run_id, "base_model": cfg.model})
                store.add_resources({"checkpoint": ModelCheckpoint(path=str(checkpoint), step=step)}, metadata={"run_id": run_id})
                progress.step = step
                callbacks.on_log(progress, metrics)
                callbacks.on_step_end(progress)
        return record.finish(checkpoint)

    def _examples(
        self, store: LightningStore, server: Any, tasks: Sequence[Task], run_id: str, step: int
    ) -> tuple[list[dict[str, Any]], float | None]:
        cfg = self.config
        if cfg.dataset is not None:
            return conversation_examples(cfg.dataset), None
        if cfg.traces_run is not None:
            rollouts = store.query_rollouts(status="succeeded", run_id=cfg.traces_run)
        else:
            endpoint = endpoint_with(
                server, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens,
                seed=derive_seed(cfg.seed, "collect", step),
            )  # fmt: skip
            resources_id = store.add_resources({"llm": endpoint}, metadata={"run_id": run_id, "step": step}).resources_id
            rollouts = self.run_rollouts(
                store, tasks, resources_id=resources_id, repeats=cfg.samples_per_task, run_id=run_id,
                timeout=cfg.rollout_timeout_s, metadata={"step": step},
            )  # fmt: skip
        rewards = [r.final_reward for r in rollouts if r.final_reward is not None]
        examples = trace_examples(store, rollouts, threshold=cfg.reward_threshold, agents=cfg.optimize)
        return examples, (sum(rewards) / len(rewards) if rewards else None)
