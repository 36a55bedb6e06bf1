"""The GRPO and RLOO objectives the config picks: their advantages, the KL penalty, and micro-batch
losses that add up to the loss of the whole batch (micro-batching must not change the update)."""

from __future__ import annotations

import pytest
import torch

from agl_trl.config import RLConfig
from agl_trl.losses import grpo_advantages, rloo_advantages
from agl_trl.objectives import GRPO, RLOO, Frozen, objective_for

GROUPS = ["a", "a", "a", "b", "b", "b"]
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
OWNER = torch.tensor([0, 0, 1, 2, 3, 4, 5])  # rollout 0 made two LLM calls


def logps(rows: int, width: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.arange(width)[None] < torch.randint(1, width + 1, (rows, 1), generator=generator)).float()
    return -torch.rand(rows, width, generator=generator) * mask, mask


def test_the_config_picks_the_objective() -> None:
    assert isinstance(objective_for(RLConfig(algorithm="grpo")), GRPO)
    rloo = objective_for(RLConfig(algorithm="rloo", beta=0.1))
    assert isinstance(rloo, RLOO) and rloo.needs_old_logps(1) and not objective_for(RLConfig()).needs_old_logps(1)


def test_advantages_are_per_rollout_and_shared_by_its_rows() -> None:
    frozen = [Frozen(None, None, None)]
    grpo, kl = GRPO(RLConfig()).advantages(REWARDS, GROUPS, OWNER, frozen)
    assert kl is None and torch.allclose(grpo, grpo_advantages(REWARDS, GROUPS)[OWNER]) and grpo[0] == grpo[1]
    rloo, _ = RLOO(RLConfig(algorithm="rloo")).advantages(REWARDS, GROUPS, OWNER, frozen)
    assert torch.allclose(rloo, rloo_advantages(REWARDS, GROUPS)[OWNER])


def test_rloo_charges_the_kl_to_the_rewards_of_the_rollout_that_drifted() -> None:
    old, mask = logps(len(OWNER))
    ref = old.clone()
    ref[3] -= 1.0 * mask[3]  # rollout 2 (row 3) drifted from the reference
    frozen = [Frozen(old[:4], ref[:4], mask[:4]), Frozen(old[4:], ref[4:], mask[4:])]
    penalised, kl = RLOO(RLConfig(algorithm="rloo", beta=0.5)).advantages(REWARDS, GROUPS, OWNER, frozen)
    rewards = REWARDS.clone()
    rewards[2] -= 0.5 * mask[3].sum()
    assert torch.allclose(penalised, rloo_advantages(rewards, GROUPS)[OWNER])
    assert kl == pytest.approx(mask[3].sum().item() / len(OWNER))


@pytest.mark.parametrize(
    "config",
    [RLConfig(loss_type="dapo"), RLConfig(loss_type="grpo"), RLConfig(loss_type="dr_grpo", max_new_tokens=5),
     RLConfig(beta=0.1), RLConfig(algorithm="rloo")],
)  # fmt: skip
def test_micro_batch_losses_add_up_to_the_batch_loss(config: RLConfig) -> None:
    objective = objective_for(config)
    new, mask = logps(len(OWNER), seed=1)
    ref, _ = logps(len(OWNER), seed=2)
    advantages = torch.linspace(-0.5, 1.5, len(OWNER))
    n_rows, n_tokens = len(OWNER), int(mask.sum())

    def loss(part: slice) -> float:
        frozen = Frozen(None, ref[part] * mask[part], mask[part])
        return objective.loss(new[part], mask[part], frozen, advantages[part], n_rows, n_tokens).loss.item()

    whole = loss(slice(0, n_rows))
    assert whole != 0 and loss(slice(0, 3)) + loss(slice(3, n_rows)) == pytest.approx(whole, rel=1e-5)
