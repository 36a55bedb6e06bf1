"""Group-relative advantages and clipped policy-gradient losses, formula-for-formula TRL's.

A row is a token sequence; the *segments* of a row are the LLM calls that sampled its trained
tokens (one per row in a ``transition`` batch, several in a ``trajectory`` row, where tokens between
calls have mask 0). Without ``segments`` each row is one segment, as in TRL, and
``tests/trainers/test_losses.py`` checks that case against TRL's own ``GRPOTrainer``/``RLOOTrainer`` code.
Each segment carries its own advantage. What each aggregation counts, so that merging calls into
one row never changes the loss:

- ``dapo``: the sum over trained tokens / ``num_items`` (all trained tokens of the batch);
- ``grpo``: each segment's token mean, summed / ``num_segments`` (calls in the batch);
- ``dr_grpo``: the sum over trained tokens / (``num_segments`` * ``max_completion_length``);
- RLOO: a segment's ratio is over its summed log-probs; the clipped terms are summed / ``num_segments``.

- GRPO (TRL ``GRPOTrainer``): advantage ``(r - mean_group) / (std_group + 1e-4)`` (unbiased std);
  token-level ratio, ``-min(ratio*A, clip(ratio)*A)`` plus ``beta * k3`` KL to the reference per token;
  ``loss_type`` picks the token aggregation (``dapo``: mean over all tokens, TRL's default;
  ``grpo``: mean per sequence, then over sequences; ``dr_grpo``: sum / (rows * max_completion_length)).
- RLOO (TRL ``RLOOTrainer``): the KL (first-order, summed per sequence) is a reward penalty; advantage
  ``r - mean(others in group)``; *sequence*-level ratio over summed log-probs, mean over sequences.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch

LossType = Literal["dapo", "grpo", "dr_grpo"]
_EPS = 1e-4  # TRL's constant in the std denominator


def group_index(groups: Sequence[Hashable] | torch.Tensor) -> torch.Tensor:
    """Dense group ids ``0..G-1`` for any hashable keys (task ids), in order of first appearance."""
    if isinstance(groups, torch.Tensor):
        return torch.unique(groups, return_inverse=True)[1]
    seen: dict[Hashable, int] = {}
    return torch.tensor([seen.setdefault(g, len(seen)) for g in groups], dtype=torch.long)


def _group_stats(rewards: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row group sum, count and unbiased variance (variance is 0 for singleton groups)."""
    n_groups = int(index.max()) + 1 if index.numel() else 0
    counts = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, torch.ones_like(rewards))
    sums = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, rewards)
    means = sums / counts
    squares = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, index, (rewards - means[index]) ** 2)
    variance = torch.where(counts > 1, squares / (counts - 1).clamp(min=1), torch.zeros_like(squares))
    return sums[index], counts[index], variance[index]


def grpo_advantages(
    rewards: torch.Tensor, groups: Sequence[Hashable] | torch.Tensor, *, scale_rewards: bool = True
) -> torch.Tensor:
    """``(r - group mean) / (group std + 1e-4)``; groups may differ in size (dropped rollouts)."""
    sums, counts, variance = _group_stats(rewards, group_index(groups))
    advantages = rewards - sums / counts
    return advantages / (variance.sqrt() + _EPS) if scale_rewards else advantages


def rloo_advantages(
    rewards: torch.Tensor, groups: Sequence[Hashable] | torch.Tensor, *, normalize: bool = False
) -> torch.Tensor:
    """``r - mean of the other rewards in the group`` (0 for a group of one); ``normalize`` then
    standardises over the whole batch, as TRL's ``normalize_advantages``."""
    sums, counts, _ = _group_stats(rewards, group_index(groups))
    baseline = (sums - rewards) / (counts - 1).clamp(min=1)
    advantages = torch.where(counts > 1, rewards - baseline, torch.zeros_like(rewards))
    if normalize and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + _EPS)
    return advantages


def segment_ids(mask: torch.Tensor, segments: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """Each token's segment (0 where masked out) and the number of segments: `segments` holds ids
    ``0..n-1`` (-1 for untrained tokens); None means one segment per row."""
    if segments is None:
        return torch.arange(mask.size(0), device=mask.device).unsqueeze(1).expand_as(mask), mask.size(0)
    return segments.clamp(min=0), int(segments.max()) + 1 if segments.numel() else 0


def per_segment(values: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of `values` per segment (differentiable)."""
    return torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, ids.reshape(-1), values.reshape(-1))


def sequence_kl(
    old_logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None
) -> torch.Tensor:
    """RLOO's KL estimate per segment: ``sum(log pi_old - log pi_ref)`` over its trained tokens;
    subtract ``beta * kl`` (summed over a credit unit's segments) from its reward before :func:`rloo_advantages`."""
    ids, n = segment_ids(mask, segments)
    return per_segment((old_logps - ref_logps) * mask, ids, n)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: LossType = "dapo",
    num_items: float | None = None,
    max_completion_length: int | None = None,
    segments: torch.Tensor | None = None,
    num_segments: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped token-level policy loss (TRL ``GRPOTrainer._compute_loss``).

    ``logps``/``old_logps``/``ref_logps``/``mask``/``segments`` are ``(rows, T)``; ``advantages`` is
    one per segment. ``old_logps=None`` means on-policy (ratio 1, gradient of ``-A * logp``).
    ``num_items``/``num_segments`` are the whole batch's trained tokens/segments when it is split
    into micro-batches (default: this one's).
    """
    ids, n = segment_ids(mask, segments)
    segs = n if num_segments is None else num_segments
    old = logps.detach() if old_logps is None else old_logps
    adv = advantages.to(logps.device)[ids]
    ratio = torch.exp(logps - old)
    high = epsilon_low if epsilon_high is None else epsilon_high
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    metrics: dict[str, float] = {}
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs ref_logps")
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        per_token = per_token + beta * kl
        metrics["kl"] = _masked_mean(kl, mask)
    if loss_type == "grpo":
        loss = (per_segment(per_token * mask, ids, n) / per_segment(mask, ids, n).clamp(min=1.0)).sum() / max(segs, 1)
    elif loss_type == "dapo":
        loss = (per_token * mask).sum() / (mask.sum() if num_items is None else torch.tensor(num_items)).clamp(min=1.0)
    elif loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("dr_grpo needs max_completion_length")
        loss = (per_token * mask).sum() / (max(segs, 1) * max_completion_length)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    is_clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + high) & (adv > 0))
    metrics["clip_ratio"] = _masked_mean(is_clipped.float(), mask)
    return loss, metrics


def rloo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    segments: torch.Tensor | None = None,
    num_segments: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped sequence-level policy loss (TRL ``RLOOTrainer._compute_loss``): the ratio is over each
    segment's summed log-probs; the KL to the reference is already in the advantages (:func:`sequence_kl`)."""
    ids, n = segment_ids(mask, segments)
    advantages = advantages.to(logps.device)
    seq_logps = per_segment(logps * mask, ids, n)
    seq_old = seq_logps.detach() if old_logps is None else per_segment(old_logps * mask, ids, n)
    ratio = torch.exp(seq_logps - seq_old)
    high = epsilon_low if epsilon_high is None else epsilon_high
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + high)
    loss = -torch.min(ratio * advantages, clipped * advantages).sum() / max(n if num_segments is None else num_segments, 1)
    is_clipped = ((ratio < 1 - epsilon_low) & (advantages < 0)) | ((ratio > 1 + high) & (advantages > 0))
    return loss, {"clip_ratio": is_clipped.float().mean().item()}


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return ((values * mask).sum() / mask.sum().clamp(min=1.0)).item()


def token_logps(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of recorded ``completions`` given their ``prompts``: ``(rows, T)`` log-probs
    and mask, right-padded to the longest completion. Logits are divided by the sampling temperature,
    as TRL does, so ratios compare against the distribution the tokens were drawn from.

    Rows are laid out as TRL lays them out: prompts left-padded, completions right-padded, so every
    completion starts at the same column and only the last ``T + 1`` logits are computed. Position
    ids count real tokens only, as `serve` counted them when it sampled."""
    device = next(model.parameters()).device
    p_max, t_max = max(len(p) for p in prompts), max(len(c) for c in completions)
    input_ids = torch.full((len(prompts), p_max + t_max), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        input_ids[i, p_max - len(p) : p_max + len(c)] = torch.tensor(list(p) + list(c), dtype=torch.long)
        attention[i, p_max - len(p) : p_max + len(c)] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    mask = attention[:, p_max:].float()
    targets = input_ids[:, p_max:]
    # the logit at column p_max - 1 + j predicts completion token j
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, logits_to_keep=t_max + 1).logits
    logits = logits[:, :-1].float() / temperature
    logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logps * mask, mask
