"""The RL objectives, GRPO and RLOO: how a batch's credit units (rollouts, or calls under a
per-step reward policy: `agl_trl.trajectories`) become one advantage per call, and the loss of one
micro-batch. The trainer picks one from ``RLConfig.algorithm`` (`objective_for`) and never
asks which it got; the formulas themselves are in `agl_trl.losses`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from .config import RLConfig
from .losses import grpo_advantages, grpo_loss, rloo_advantages, rloo_loss, sequence_kl


@dataclass(frozen=True)
class Frozen:
    """One micro-batch's log-probs taken before the update, with their trained-token mask: the
    behaviour policy's (`old`: what `serve` recorded when it sampled, NaN where it recorded none and
    the loop computed none) and the reference policy's (`ref`, when ``beta`` is set). `segments`:
    the micro-batch's call of each token (``0..n-1``, -1 untrained; None: one call per row)."""

    old: torch.Tensor | None
    ref: torch.Tensor | None
    mask: torch.Tensor | None
    segments: torch.Tensor | None = None


@dataclass(frozen=True)
class MicroLoss:
    """A micro-batch's loss, weighted so that the micro-batches' losses add up to the batch's."""

    loss: torch.Tensor
    clipped_tokens: float
    #: KL to the reference summed over the micro-batch's tokens, when the loss computes it
    kl_tokens: float | None = None


class Objective(Protocol):
    def needs_old_logps(self, updates_per_batch: int) -> bool:
        """Whether the loop must keep the sampling policy's log-probs (`Frozen.old`)."""
        ...

    def advantages(
        self, rewards: torch.Tensor, groups: Sequence[str], owner: torch.Tensor, frozen: Sequence[Frozen]
    ) -> tuple[torch.Tensor, float | None]:
        """Each call's advantage (call ``i`` belongs to credit unit ``owner[i]``, whose return is
        ``rewards[owner[i]]``) and, when the KL enters the rewards, its mean per call."""
        ...

    def loss(
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_calls: int, n_tokens: int
    ) -> MicroLoss:
        """The loss of a micro-batch of the current policy's `logps`; `advantages` are its calls',
        ``n_calls``/``n_tokens`` the whole batch's calls and trained tokens."""
        ...


def behaviour(frozen: Frozen, logps: torch.Tensor) -> torch.Tensor | None:
    """The importance ratio's denominator: the recorded log-probs, the current ones (ratio 1)
    where none was recorded."""
    if frozen.old is None:
        return None
    return torch.where(torch.isnan(frozen.old), logps.detach(), frozen.old)


class GRPO:
    """Group mean/std advantages; token-level clipped loss with the KL (``beta``) in the loss."""

    def __init__(self, config: RLConfig) -> None:
        self.config = config

    def needs_old_logps(self, updates_per_batch: int) -> bool:
        return updates_per_batch > 1

    def advantages(
        self, rewards: torch.Tensor, groups: Sequence[str], owner: torch.Tensor, frozen: Sequence[Frozen]
    ) -> tuple[torch.Tensor, float | None]:
        return grpo_advantages(rewards, groups, scale_rewards=self.config.scale_rewards)[owner], None

    def loss(
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_calls: int, n_tokens: int
    ) -> MicroLoss:
        cfg = self.config
        loss, metrics = grpo_loss(
            logps, behaviour(frozen, logps), advantages, mask, ref_logps=frozen.ref, beta=cfg.beta,
            epsilon_low=cfg.clip_eps, epsilon_high=cfg.clip_eps_high, loss_type=cfg.loss_type, num_items=n_tokens,
            max_completion_length=cfg.max_new_tokens, segments=frozen.segments, num_segments=n_calls,
        )  # fmt: skip
        tokens = mask.sum().item()
        kl = metrics["kl"] * tokens if "kl" in metrics else None
        return MicroLoss(loss, metrics["clip_ratio"] * tokens, kl)


class RLOO:
    """Leave-one-out advantages with the KL (``beta``) as a reward penalty; sequence-level clipped loss."""

    def __init__(self, config: RLConfig) -> None:
        self.config = config

    def needs_old_logps(self, updates_per_batch: int) -> bool:
        return updates_per_batch > 1 or bool(self.config.beta)

    def advantages(
        self, rewards: torch.Tensor, groups: Sequence[str], owner: torch.Tensor, frozen: Sequence[Frozen]
    ) -> tuple[torch.Tensor, float | None]:
        kl = None
        if self.config.beta:
            call_kl = torch.cat([sequence_kl(f.old, f.ref, f.mask, f.segments) for f in frozen]).to(rewards.device)  # type: ignore[arg-type]
            penalty = torch.zeros_like(rewards).index_add_(0, owner, call_kl)  # summed over a unit's calls
            rewards = rewards - self.config.beta * penalty
            kl = call_kl.mean().item()
        return rloo_advantages(rewards, groups)[owner], kl

    def loss(
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_calls: int, n_tokens: int
    ) -> MicroLoss:
        cfg = self.config
        loss, metrics = rloo_loss(
            logps, behaviour(frozen, logps), advantages, mask, epsilon_low=cfg.clip_eps, epsilon_high=cfg.clip_eps_high,
            segments=frozen.segments, num_segments=n_calls,
        )  # fmt: skip
        return MicroLoss(loss, metrics["clip_ratio"] * mask.sum().item())


OBJECTIVES: dict[str, type[GRPO] | type[RLOO]] = {"grpo": GRPO, "rloo": RLOO}


def objective_for(config: RLConfig) -> Objective:
    """The objective ``config.algorithm`` names."""
    return OBJECTIVES[config.algorithm](config)
