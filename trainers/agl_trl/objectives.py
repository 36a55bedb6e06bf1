"""The RL objectives, GRPO and RLOO: how a batch's rewards become per-row advantages, and the loss
of one micro-batch. The trainer picks one from ``RLConfig.algorithm`` (`objective_for`) and never
asks which it got; the formulas themselves are in `agl_trl.losses`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from .config import RLConfig
from .losses import grpo_advantages, grpo_loss, rloo_advantages, rloo_loss, sequence_kl


@dataclass(frozen=True)
class Frozen:
    """One micro-batch's log-probs taken before the update, with their completion mask: the
    sampling policy's (`old`, when the objective or several updates need them) and the reference
    policy's (`ref`, when ``beta`` is set)."""

    old: torch.Tensor | None
    ref: torch.Tensor | None
    mask: torch.Tensor | None


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
        """Each row's advantage (rows belong to rollout ``owner[row]``) and, when the KL enters
        the rewards, its mean per row."""
        ...

    def loss(
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_rows: int, n_tokens: int
    ) -> MicroLoss:
        """The loss of a micro-batch of the current policy's `logps` (``n_rows``/``n_tokens``: the batch's)."""
        ...


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
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_rows: int, n_tokens: int
    ) -> MicroLoss:
        cfg = self.config
        loss, metrics = grpo_loss(
            logps, frozen.old, advantages, mask, ref_logps=frozen.ref, beta=cfg.beta, epsilon_low=cfg.clip_eps,
            epsilon_high=cfg.clip_eps_high, loss_type=cfg.loss_type, num_items=n_tokens,
            max_completion_length=cfg.max_new_tokens,
        )  # fmt: skip
        # dapo already divides by the whole batch's tokens; the per-row losses average over rows
        scale = 1.0 if cfg.loss_type == "dapo" else mask.size(0) / n_rows
        tokens = mask.sum().item()
        kl = metrics["kl"] * tokens if "kl" in metrics else None
        return MicroLoss(loss * scale, metrics["clip_ratio"] * tokens, kl)


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
            row_kl = torch.cat([sequence_kl(f.old, f.ref, f.mask) for f in frozen])  # type: ignore[arg-type]
            penalty = torch.zeros_like(rewards).index_add_(0, owner, row_kl)  # summed over a rollout's rows
            rewards = rewards - self.config.beta * penalty
            kl = row_kl.mean().item()
        return rloo_advantages(rewards, groups)[owner], kl

    def loss(
        self, logps: torch.Tensor, mask: torch.Tensor, frozen: Frozen, advantages: torch.Tensor, n_rows: int, n_tokens: int
    ) -> MicroLoss:
        cfg = self.config
        loss, metrics = rloo_loss(logps, frozen.old, advantages, mask, epsilon_low=cfg.clip_eps, epsilon_high=cfg.clip_eps_high)
        return MicroLoss(loss * (mask.size(0) / n_rows), metrics["clip_ratio"] * mask.sum().item())


OBJECTIVES: dict[str, type[GRPO] | type[RLOO]] = {"grpo": GRPO, "rloo": RLOO}


def objective_for(config: RLConfig) -> Objective:
    """The objective ``config.algorithm`` names."""
    return OBJECTIVES[config.algorithm](config)
