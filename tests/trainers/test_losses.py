"""Our GRPO/RLOO losses against TRL's own code on the same random tensors (tolerance 1e-6).

Losses: TRL's ``GRPOTrainer._compute_loss`` and ``RLOOTrainer._compute_loss`` are called for real, on a
trainer instance made without ``__init__`` (no model, no accelerator): only the attributes the loss
reads are set, and ``_get_per_token_logps_and_entropies`` is replaced by a function returning our
random log-probs — so the arithmetic under test is TRL's line for line, gradients included.

Advantages: TRL computes them inline in ``_generate_and_score_completions`` (generation, reward
functions and all), which cannot be called in isolation. The reference here replicates those lines
exactly — ``view(-1, G)``, ``trl.trainer.utils.nanstd`` and the ``1e-4`` epsilon — on equal-size,
contiguous groups; further tests cover what TRL cannot express (uneven, interleaved groups).
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from agl_trl.losses import (
    grpo_advantages,
    grpo_loss,
    rloo_advantages,
    rloo_loss,
    sequence_kl,
    token_logps,
)

trl = pytest.importorskip("trl")
from trl import GRPOTrainer, RLOOTrainer  # noqa: E402
from trl.trainer.utils import nanstd  # noqa: E402

B, T, G = 12, 7, 4


class _Accelerator:
    num_processes = 1

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    gather_for_metrics = gather

    def reduce(self, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return x


def _bare(cls: type, **attrs: object) -> object:
    trainer = object.__new__(cls)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        aux_loss_enabled=False,
        **attrs,
    )
    return trainer


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logps = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3
    mask = (torch.rand(B, T, generator=gen) > 0.25).double()
    mask[:, 0] = 1.0  # every row has at least one completion token
    return {
        "logps": logps,
        "old": logps + torch.randn(B, T, generator=gen, dtype=torch.float64) * 0.3,  # ratios hit both clip edges
        "ref": logps + torch.randn(B, T, generator=gen, dtype=torch.float64) * 0.2,
        "adv": torch.randn(B, generator=gen, dtype=torch.float64),
        "mask": mask,
        "rewards": torch.randint(0, 3, (B,), generator=gen).double(),
    }


def _trl_inputs(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": x["mask"],
        "advantages": x["adv"],
    }


def _with_grad(logps: torch.Tensor) -> torch.Tensor:
    return logps.clone().requires_grad_(True)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("epsilon_high", [None, 0.28])
@pytest.mark.parametrize("seed", [0, 1])
def test_grpo_loss_equals_trl(loss_type: str, beta: float, epsilon_high: float | None, seed: int) -> None:
    x = _tensors(seed)
    ours_logps, trl_logps = _with_grad(x["logps"]), _with_grad(x["logps"])
    trainer = _bare(
        GRPOTrainer,
        beta=beta,
        loss_type=loss_type,
        epsilon_low=0.2,
        epsilon_high=0.2 if epsilon_high is None else epsilon_high,
        importance_sampling_level="token",
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        use_vllm=False,
        _entropy_bonus_enabled=False,
        current_gradient_accumulation_steps=1,
        max_completion_length=T,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
    )
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (trl_logps, torch.zeros_like(trl_logps), None)
    inputs = _trl_inputs(x) | {
        "old_per_token_logps": x["old"],
        "ref_per_token_logps": x["ref"],
        "num_items_in_batch": x["mask"].sum(),
    }
    expected = trainer._compute_loss(None, inputs)
    ours, metrics = grpo_loss(
        ours_logps, x["old"], x["adv"], x["mask"], ref_logps=x["ref"], beta=beta, epsilon_high=epsilon_high,
        loss_type=loss_type, max_completion_length=T,  # type: ignore[arg-type]
    )
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0)
    expected.backward()
    ours.backward()
    assert torch.allclose(ours_logps.grad, trl_logps.grad, atol=1e-6, rtol=0)
    assert metrics["clip_ratio"] == pytest.approx(trainer._metrics["train"]["clip_ratio/region_mean"][0], abs=1e-6)
    if beta:
        assert metrics["kl"] == pytest.approx(trainer._metrics["train"]["kl"][0], abs=1e-6)


@pytest.mark.parametrize("epsilon_high", [None, 0.28])
@pytest.mark.parametrize("seed", [0, 1])
def test_rloo_loss_equals_trl(epsilon_high: float | None, seed: int) -> None:
    x = _tensors(seed)
    ours_logps, trl_logps = _with_grad(x["logps"]), _with_grad(x["logps"])
    old = x["logps"] + (x["old"] - x["logps"]) * 0.2  # sequence-level ratios near the clip edges
    trainer = _bare(RLOOTrainer, epsilon_low=0.2, epsilon_high=0.2 if epsilon_high is None else epsilon_high)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (trl_logps, torch.zeros_like(trl_logps), None)
    inputs = _trl_inputs(x) | {"old_logps": (old * x["mask"]).sum(1)}
    expected = trainer._compute_loss(None, inputs)
    ours, metrics = rloo_loss(ours_logps, old, x["adv"], x["mask"], epsilon_high=epsilon_high)
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0)
    expected.backward()
    ours.backward()
    assert torch.allclose(ours_logps.grad, trl_logps.grad, atol=1e-6, rtol=0)
    assert metrics["clip_ratio"] == pytest.approx(trainer._metrics["train"]["clip_ratio/region_mean"][0], abs=1e-6)


def test_on_policy_loss_is_minus_advantage_weighted_logp_gradient() -> None:
    """With ``old_logps=None`` (one step per batch) the ratio is 1 and nothing is clipped."""
    x = _tensors(3)
    logps = _with_grad(x["logps"])
    loss, metrics = grpo_loss(logps, None, x["adv"], x["mask"])
    loss.backward()
    expected = -x["adv"].unsqueeze(1) * x["mask"] / x["mask"].sum()
    assert torch.allclose(logps.grad, expected, atol=1e-12)
    assert metrics["clip_ratio"] == 0.0


def _trl_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """TRL ``GRPOTrainer._generate_and_score_completions``, scale_rewards="group", verbatim."""
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    std_rewards = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G, dim=0)
    return (rewards - mean_grouped_rewards) / (std_rewards + 1e-4)


def _trl_rloo_advantages(rewards: torch.Tensor, normalize: bool) -> torch.Tensor:
    """TRL ``RLOOTrainer._generate_and_score_completions``, verbatim (no unscorable rewards)."""
    grouped_rewards = rewards.view(-1, G)
    scorable_counts = (~torch.isnan(grouped_rewards)).sum(dim=1, keepdim=True)
    grouped_sum = torch.nansum(grouped_rewards, dim=1, keepdim=True)
    advantages = rewards - ((grouped_sum - grouped_rewards) / (scorable_counts - 1)).view(-1)
    if normalize:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)
    return advantages


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grpo_advantages_equal_trl(seed: int) -> None:
    rewards = _tensors(seed)["rewards"]
    groups = [i // G for i in range(B)]
    assert torch.allclose(grpo_advantages(rewards, groups), _trl_grpo_advantages(rewards), atol=1e-6, rtol=0)
    unscaled = grpo_advantages(rewards, groups, scale_rewards=False)
    assert torch.allclose(unscaled, rewards - rewards.view(-1, G).mean(1).repeat_interleave(G), atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rloo_advantages_equal_trl(normalize: bool, seed: int) -> None:
    rewards = _tensors(seed)["rewards"]
    groups = [i // G for i in range(B)]
    ours = rloo_advantages(rewards, groups, normalize=normalize)
    assert torch.allclose(ours, _trl_rloo_advantages(rewards, normalize), atol=1e-6, rtol=0)


def test_rloo_kl_penalty_equals_trl() -> None:
    """TRL: ``per_token_kl = old - ref``; ``rewards -= beta * (per_token_kl * mask).sum(-1)``."""
    x = _tensors(4)
    expected = ((x["old"] - x["ref"]) * x["mask"]).sum(-1)
    assert torch.allclose(sequence_kl(x["old"], x["ref"], x["mask"]), expected, atol=1e-12)


def test_advantages_with_uneven_interleaved_groups() -> None:
    """Dropped rollouts leave groups of different sizes; rows need not be contiguous."""
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 5.0])
    groups = ["a", "b", "a", "b", "a", "c"]
    a = torch.tensor([1.0, 1.0, 0.0])
    b = torch.tensor([0.0, 1.0])
    grpo = grpo_advantages(rewards, groups)
    assert torch.allclose(grpo[[0, 2, 4]], (a - a.mean()) / (a.std() + 1e-4))
    assert torch.allclose(grpo[[1, 3]], (b - b.mean()) / (b.std() + 1e-4))
    assert grpo[5] == 0.0  # a lone rollout has no baseline to beat
    rloo = rloo_advantages(rewards, groups)
    assert torch.allclose(rloo[[0, 2, 4]], torch.tensor([1 - 0.5, 1 - 0.5, 0 - 1.0]))
    assert torch.allclose(rloo[[1, 3]], torch.tensor([-1.0, 1.0]))
    assert rloo[5] == 0.0
    assert torch.equal(grpo_advantages(rewards, torch.tensor([7, 3, 7, 3, 7, 9])), grpo)


def test_token_logps_match_unpadded_forward() -> None:
    """Padded batching gives each completion token the log-prob an unpadded forward gives it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, pad_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14]]
    completions = [[20, 21], [22, 23, 24, 25], [26]]
    with torch.no_grad():
        logps, mask = token_logps(model, prompts, completions, pad_token_id=0, temperature=0.7)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            logits = model(torch.tensor([p + c])).logits[0, len(p) - 1 : -1] / 0.7
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c).unsqueeze(-1)).squeeze(-1)
            assert torch.allclose(logps[i, : len(c)], expected, atol=1e-5)
            assert mask[i].sum() == len(c) and torch.all(logps[i, len(c) :] == 0)
