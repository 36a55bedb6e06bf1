"""Configuration of the RL trainers (GRPO, RLOO). Defaults are the ones the tiny-model demo uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .losses import LossType
from .trajectories import Aggregation, CreditPolicy


@dataclass
class RLConfig:
    """One RL run. Names follow TRL's ``GRPOConfig`` where an equivalent exists.

    A step samples ``batch_size`` tasks, runs each ``group_size`` times, scores every rollout, turns
    rewards into group-relative advantages and takes ``updates_per_batch`` optimizer steps on the
    recorded tokens of every LLM call of the selected agents (`agl_trl.trajectories`).
    """

    model: str = ""
    """Path or hub name of the policy; empty means the tiny model built on this machine."""
    algorithm: Literal["grpo", "rloo"] = "grpo"
    """``grpo``: advantages ``(r - mean) / std`` per group, token-level clipped loss, KL in the loss.
    ``rloo``: leave-one-out baseline, sequence-level clipped loss, KL as a reward penalty."""
    episodes: int = 30
    """Training steps (each one batch of ``batch_size`` x ``group_size`` rollouts)."""
    batch_size: int = 16
    """Distinct tasks per step."""
    group_size: int = 8
    """Rollouts per task; advantages compare rollouts of the same task. Groups where every rollout
    got the same reward carry no signal, so this must be large enough to see both outcomes."""
    learning_rate: float = 1e-3
    """AdamW learning rate (constant). Tiny models want ~1e-3; billion-parameter models ~1e-6."""
    beta: float = 0.0
    """KL coefficient to the initial policy (0 keeps no reference model, as TRL's GRPO default)."""
    clip_eps: float = 0.2
    """Lower clip range of the probability ratio (TRL's ``epsilon``)."""
    clip_eps_high: float | None = None
    """Upper clip range; ``None`` means ``clip_eps`` (DAPO recommends 0.28)."""
    loss_type: LossType = "dapo"
    """GRPO token aggregation: ``dapo`` (TRL's default), ``grpo`` or ``dr_grpo``."""
    scale_rewards: bool = True
    """GRPO: divide by the group's reward std (``False`` is Dr. GRPO's unscaled variant)."""
    updates_per_batch: int = 1
    """Optimizer steps per sampled batch (TRL's ``num_iterations``); above 1 the clip becomes active."""
    max_grad_norm: float = 1.0
    max_new_tokens: int = 64
    """Cap on the tokens of one LLM call."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts; sampled held-out accuracy is measured at it too."""
    top_p: float = 1.0
    eval_every: int = 10
    """Evaluate on the held-out tasks every N steps (0: only before and after training)."""
    checkpoint_every: int = 10
    """Save model, optimizer, scheduler and RNG state every N steps (0: only at the end)."""
    save_total_limit: int | None = None
    """Keep only the newest N checkpoints, plus the one with the best held-out reward (TRL's name); None keeps all."""
    output_dir: str | None = None
    """Run folder: checkpoints, ``metrics.jsonl``, ``training.log``, ``heldout.json``, ``run.json``.
    Defaults to ``$AGL_HOME/runs/<agent>-<algorithm>/`` (e.g. ``~/.agent-lightning/runs/math-agent-grpo``),
    the same folder whether the run starts from Python or from ``agent-lightning train``."""
    seed: int = 0
    rollout_timeout_s: float = 120.0
    """A rollout not finished by then is dropped from its group; training goes on without it."""
    aggregation: Aggregation = "trajectory"
    """``trajectory``: an agent's consecutive calls whose prompt ids extend the previous call's prompt
    and sampled ids exactly are one training sequence — sampled tokens trained, tool results and
    other inserted tokens kept as context with loss mask 0; a call that does not continue exactly
    starts a new row (``prefix_breaks`` in the metrics). ``transition``: one row per call. The loss
    is normalised per call, so both give the same loss; trajectory rows read the shared context
    once, hence the default."""
    reward_policy: CreditPolicy = "final"
    """Which return each call's advantage is computed from. ``final``: the rollout's final reward,
    group-relative per task over rollouts (GRPO/RLOO as published). ``per_call``: the rewards
    ``agl.emit_reward`` emitted after the call (before the next one); ``discounted``: the discounted
    return ``r_t + gamma r_{t+1} + ...`` of those — both group-relative over the calls of the task's
    group, each call of a trajectory row carrying its own advantage. ``final`` is the default: most
    agents are scored once, at the end, and a per-step policy only adds information when the agent
    emits intermediate rewards."""
    gamma: float = 1.0
    """Discount of ``reward_policy: discounted`` (1: every later reward counts fully)."""
    optimize: list[str] = field(default_factory=list)
    """Names of the agents whose LLM calls get gradient; empty means every call."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of all weights."""
    lora_rank: int = 16

    def __post_init__(self) -> None:
        if self.algorithm not in ("grpo", "rloo"):
            raise ValueError(f"algorithm must be 'grpo' or 'rloo', not {self.algorithm!r}")
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2: advantages compare rollouts of the same task")
        for name in ("episodes", "batch_size", "max_new_tokens", "updates_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError("save_total_limit must be at least 1 (or None to keep every checkpoint)")
        if self.aggregation not in ("trajectory", "transition"):
            raise ValueError(f"aggregation must be 'trajectory' or 'transition', not {self.aggregation!r}")
        if self.reward_policy not in ("final", "per_call", "discounted"):
            raise ValueError(f"reward_policy must be 'final', 'per_call' or 'discounted', not {self.reward_policy!r}")
        if not 0 <= self.gamma <= 1:
            raise ValueError("gamma must be in [0, 1]")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
