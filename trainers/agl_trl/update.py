"""One RL policy update: `PolicyUpdate` takes ``updates_per_batch`` optimizer steps on a `Batch`
(`agl_trl.trajectories`) with the run's `Objective`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from .config import RLConfig
from .losses import token_logps
from .objectives import Frozen, Objective
from .trajectories import Batch

#: Rows per forward/backward pass; bounds activation memory, not the batch.
MICRO_BATCH_ROWS = 32


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
            layouts = [_layout(batch, c) for c in chunks]
            frozen = [self._frozen(batch, c, segments, need_old) for c, (segments, _) in zip(chunks, layouts)]
        returns, groups, unit = batch.credit_units(cfg.reward_policy)
        advantages, kl = self.objective.advantages(
            torch.tensor(returns, dtype=torch.float32), groups, torch.tensor(unit, dtype=torch.long), frozen
        )
        n_calls, n_tokens = len(batch.call_owner), batch.trained_tokens
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        with _no_kv_cache(model):
            for _ in range(cfg.updates_per_batch):
                total, clipped, kls = 0.0, 0.0, []
                for chunk, (segments, calls), fixed in zip(chunks, layouts, frozen):
                    logps, mask = self._logps(model, batch, chunk, segments)
                    part = self.objective.loss(logps, mask, fixed, advantages[calls], n_calls, n_tokens)
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

    def _logps(self, net: Any, batch: Batch, part: slice, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs of the rows' completion tokens and the mask of the trained ones."""
        logps, attention = token_logps(
            net, batch.prompts[part], batch.completions[part], pad_token_id=self.tokenizer.pad_token_id,
            temperature=self.config.temperature or 1.0,
        )  # fmt: skip
        mask = attention * (segments.to(attention.device) >= 0)
        return logps * mask, mask

    def _frozen(self, batch: Batch, chunk: slice, segments: torch.Tensor, need_old: bool) -> Frozen:
        device = next(self.model.parameters()).device
        segments = segments.to(device)
        trained = segments >= 0
        recorded = _padded(batch.behaviour[chunk], segments.size(1), 0.0).to(device)
        old: torch.Tensor | None = recorded if not torch.isnan(recorded[trained]).all() else None
        ref = None
        if need_old:
            computed, _ = self._logps(self.model, batch, chunk, segments)
            old = computed if old is None else torch.where(torch.isnan(old), computed, old)
        if self.config.beta:
            if self.reference is not None:
                ref, _ = self._logps(self.reference, batch, chunk, segments)
            else:
                with self.model.disable_adapter():  # LoRA: the base model is the reference
                    ref, _ = self._logps(self.model, batch, chunk, segments)
        return Frozen(old, ref, trained.float(), segments)


def _padded(rows: list[list[Any]], width: int, fill: float) -> torch.Tensor:
    out = torch.full((len(rows), width), fill)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=out.dtype)
    return out


def _layout(batch: Batch, part: slice) -> tuple[torch.Tensor, slice]:
    """The micro-batch's call of each completion token, numbered from 0 (-1: not trained), and
    the slice of the batch's calls it holds (calls are numbered in row order, so they are contiguous)."""
    width = max(len(c) for c in batch.completions[part])
    segments = _padded(batch.segments[part], width, -1.0).long()
    first, last = int(segments[segments >= 0].min()), int(segments.max())
    return torch.where(segments >= 0, segments - first, segments), slice(first, last + 1)


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
