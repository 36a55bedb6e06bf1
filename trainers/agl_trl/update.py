"""One RL policy update: finished rollouts become rows of recorded token ids (`build_batch`), and
`PolicyUpdate` takes ``updates_per_batch`` optimizer steps on them with the run's `Objective`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.types import Rollout, Task

from .config import RLConfig
from .losses import token_logps
from .objectives import Frozen, Objective

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

    def zero_variance_fraction(self) -> float:
        """The fraction of groups whose rollouts all got the same reward (they carry no signal)."""
        by_group: dict[str, set[float]] = {}
        for group, reward in zip(self.groups, self.rewards):
            by_group.setdefault(group, set()).add(reward)
        return sum(len(v) == 1 for v in by_group.values()) / len(by_group) if by_group else 0.0


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


@dataclass
class PolicyUpdate:
    """The training side of an RL run: the policy, its optimizer and the objective's loss.

    `reference` is the frozen initial policy for the KL (``beta``); ``None`` with a LoRA policy
    means the base model under the adapter.
    """

    config: RLConfig
    objective: Objective
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    reference: Any = None

    def __call__(self, batch: Batch) -> dict[str, Any]:
        """``updates_per_batch`` optimizer steps on `batch`; returns loss, kl and clip_fraction."""
        cfg, model = self.config, self.model
        if not batch.prompts:
            return {"loss": 0.0, "kl": None, "clip_fraction": 0.0}
        chunks = [slice(i, i + MICRO_BATCH_ROWS) for i in range(0, len(batch.prompts), MICRO_BATCH_ROWS)]
        need_old = self.objective.needs_old_logps(cfg.updates_per_batch)
        with torch.no_grad(), _no_kv_cache(model):
            frozen = [self._frozen(batch, c, need_old) for c in chunks]
        rewards = torch.tensor(batch.rewards, dtype=torch.float32)
        owner = torch.tensor(batch.owner)
        advantages, kl = self.objective.advantages(rewards, batch.groups, owner, frozen)
        n_rows, n_tokens = len(batch.prompts), sum(len(c) for c in batch.completions)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        with _no_kv_cache(model):
            for _ in range(cfg.updates_per_batch):
                total, clipped, kls = 0.0, 0.0, []
                for chunk, fixed in zip(chunks, frozen):
                    logps, mask = self._logps(model, batch, chunk)
                    part = self.objective.loss(logps, mask, fixed, advantages[chunk], n_rows, n_tokens)
                    part.loss.backward()
                    total += part.loss.item()
                    clipped += part.clipped_tokens
                    if part.kl_tokens is not None:
                        kls.append(part.kl_tokens)
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        model.eval()
        if kls:  # the last update's, as the loss reports it
            kl = sum(kls) / n_tokens
        return {"loss": total, "kl": kl, "clip_fraction": clipped / n_tokens}

    def _logps(self, net: Any, batch: Batch, part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        return token_logps(
            net, batch.prompts[part], batch.completions[part], pad_token_id=self.tokenizer.pad_token_id,
            temperature=self.config.temperature or 1.0,
        )  # fmt: skip

    def _frozen(self, batch: Batch, chunk: slice, need_old: bool) -> Frozen:
        old = ref = mask = None
        if need_old:
            old, mask = self._logps(self.model, batch, chunk)
        if self.config.beta:
            if self.reference is not None:
                ref, mask = self._logps(self.reference, batch, chunk)
            else:
                with self.model.disable_adapter():  # LoRA: the base model is the reference
                    ref, mask = self._logps(self.model, batch, chunk)
        return Frozen(old, ref, mask)


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
