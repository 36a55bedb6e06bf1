"""Finished rollouts → the rows the RL loss trains on (`build_batch`), with each LLM call's credit.

**Rows** (``RLConfig.aggregation``). ``transition``: one row per LLM call (its prompt ids, then its
sampled ids). ``trajectory`` (default): a call whose prompt token ids start with *all* the ids of
its agent's open row in the same rollout (that row's prompt, sampled and inserted tokens) continues
that row; the ids between (tool results, other turns, the chat template's scaffolding) join the row
as context with loss mask 0, then its own sampled ids are trained. A call that does not continue
its agent's row exactly (history rewritten, re-templated, truncated) opens a new row: a *prefix
break*, counted. Every token a row trains on is an id `serve` sampled, with the log-prob `serve`
recorded when it sampled it (the behaviour log-prob of the importance ratio).

**Calls** are the sampled segments inside rows, numbered across the batch in row order; the loss
normalises per call (`agl_trl.losses`), so merging calls into rows never changes the loss.

**Credit** (``RLConfig.reward_policy``): ``final`` — every call carries its rollout's final reward
and advantages are computed per rollout; ``per_call`` — each call's return is the sum of the
``agl.emit_reward`` values that follow it (before the next call); ``discounted`` — each call's
return is ``r_t + gamma * r_{t+1} + ...`` over those per-call rewards. A rollout that emitted no
reward span gives its final reward to its last call. Rewards are assigned over all calls of the
rollout before ``optimize`` keeps the selected agents' calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

from agl_core.store.base import LightningStore
from agl_core.training.adapters import rollout_triplets
from agl_core.types import Rollout, Task, Triplet

Aggregation = Literal["trajectory", "transition"]
CreditPolicy = Literal["final", "per_call", "discounted"]


@dataclass
class Batch:
    """What the loss sees: rows (sequences), the calls (sampled segments) inside them, rollouts.

    Row ``i`` is ``prompts[i] + completions[i]``; ``segments[i][j]`` is the batch-wide call index
    that sampled completion token ``j``, or -1 for a token inserted between calls (context, not
    trained); ``behaviour[i][j]`` its recorded log-prob (0.0 for inserted tokens, NaN when `serve`
    recorded none).
    """

    prompts: list[list[int]] = field(default_factory=list)
    completions: list[list[int]] = field(default_factory=list)
    segments: list[list[int]] = field(default_factory=list)
    behaviour: list[list[float]] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)
    #: index into `rewards` of each row's rollout
    owner: list[int] = field(default_factory=list)
    #: per call: its rollout (index into `rewards`) and its return under the reward policy
    call_owner: list[int] = field(default_factory=list)
    call_returns: list[float] = field(default_factory=list)
    #: per rollout: final reward and group (task id)
    rewards: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    dropped: int = 0
    untrainable_calls: int = 0
    trajectory_rows: int = 0
    transition_rows: int = 0
    prefix_breaks: int = 0

    @property
    def tokens(self) -> int:
        """Unpadded tokens the forward pass reads (shared context counted once per row)."""
        return sum(len(p) + len(c) for p, c in zip(self.prompts, self.completions))

    @property
    def trained_tokens(self) -> int:
        return sum(s >= 0 for row in self.segments for s in row)

    def credit_units(self, policy: CreditPolicy | str) -> tuple[list[float], list[str], list[int]]:
        """What advantages are group-relative over: (returns, group of each, unit of each call).

        ``final``: one unit per rollout (its reward), as GRPO/RLOO define it. Per-step policies: one
        unit per call (its return), compared with the calls of the same task's group."""
        if policy == "final":
            return self.rewards, self.groups, self.call_owner
        return self.call_returns, [self.groups[o] for o in self.call_owner], list(range(len(self.call_owner)))

    def zero_variance_fraction(self) -> float:
        """The fraction of groups whose rollouts all got the same reward (they carry no signal)."""
        by_group: dict[str, set[float]] = {}
        for group, reward in zip(self.groups, self.rewards):
            by_group.setdefault(group, set()).add(reward)
        return sum(len(v) == 1 for v in by_group.values()) / len(by_group) if by_group else 0.0

    def add_row(self, rollout: int, agent: str | None, calls: Sequence[tuple[list[int], list[int], list[float] | None, float]]) -> None:
        """Append one row made of consecutive `calls` (prompt ids, sampled ids, their log-probs,
        return); each call's prompt must extend everything before it in the row."""
        prompt = list(calls[0][0])
        completion: list[int] = []
        segments: list[int] = []
        behaviour: list[float] = []
        for prompt_ids, response_ids, logprobs, value in calls:
            inserted = prompt_ids[len(prompt) + len(completion) :]
            completion += inserted + response_ids
            segments += [-1] * len(inserted) + [len(self.call_owner)] * len(response_ids)
            recorded = logprobs if logprobs is not None and len(logprobs) == len(response_ids) else [math.nan] * len(response_ids)
            behaviour += [0.0] * len(inserted) + list(recorded)
            self.call_owner.append(rollout)
            self.call_returns.append(value)
        self.prompts.append(prompt)
        self.completions.append(completion)
        self.segments.append(segments)
        self.behaviour.append(behaviour)
        self.agents.append(agent)
        self.owner.append(rollout)
        if len(calls) > 1:
            self.trajectory_rows += 1
        else:
            self.transition_rows += 1


def call_returns(rewards: Sequence[float | None], final: float, policy: CreditPolicy | str, gamma: float) -> list[float]:
    """Each call's return from the per-call rewards of one rollout (see the module docstring)."""
    if policy == "final":
        return [final] * len(rewards)
    values = [r or 0.0 for r in rewards]
    if values and all(r is None for r in rewards):
        values[-1] = final  # no reward span: the final reward follows the last call
    if policy == "per_call":
        return values
    returns, running = [0.0] * len(values), 0.0
    for i in reversed(range(len(values))):
        running = values[i] + gamma * running
        returns[i] = running
    return returns


def _rows(triplets: Sequence[Triplet], aggregation: str) -> tuple[list[list[int]], int]:
    """Indices of `triplets` per row, in order of each row's first call, and the prefix breaks."""
    rows: list[list[int]] = []
    open_row: dict[str | None, tuple[int, list[int]]] = {}  # agent -> (row, its token ids so far)
    breaks = 0
    for i, t in enumerate(triplets):
        prompt, response = t.prompt_token_ids or [], t.response_token_ids or []
        current = open_row.get(t.agent_name) if aggregation == "trajectory" else None
        if current is not None and len(prompt) >= len(current[1]) and prompt[: len(current[1])] == current[1]:
            rows[current[0]].append(i)
        else:
            breaks += current is not None
            rows.append([i])
            current = (len(rows) - 1, [])
        open_row[t.agent_name] = (current[0], prompt + response)
    return rows, breaks


def build_batch(
    store: LightningStore,
    rollouts: Sequence[Rollout],
    tasks: Sequence[Task],
    agents: Sequence[str] | None,
    *,
    aggregation: Aggregation | str = "trajectory",
    reward_policy: CreditPolicy | str = "final",
    gamma: float = 1.0,
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
    wanted = set(agents) if agents else None
    batch = Batch()
    for rollout in kept:
        index = len(batch.rewards)
        final = float(rollout.final_reward or 0.0)
        batch.rewards.append(final)
        batch.groups.append(rollout.task_id or rollout.rollout_id)
        every = rollout_triplets(store, rollout, reward_policy="final" if reward_policy == "final" else "per_call")
        returns = call_returns([t.reward for t in every], final, reward_policy, gamma)
        calls = []
        for triplet, value in zip(every, returns):
            if wanted is not None and triplet.agent_name not in wanted:
                continue
            if not triplet.prompt_token_ids or not triplet.response_token_ids:
                batch.untrainable_calls += 1
                continue
            calls.append((triplet, value))
        rows, breaks = _rows([t for t, _ in calls], aggregation)
        batch.prefix_breaks += breaks
        for row in rows:
            members = [calls[i] for i in row]
            batch.add_row(
                index, members[0][0].agent_name,
                [(t.prompt_token_ids or [], t.response_token_ids or [], t.response_logprobs, v) for t, v in members],
            )  # fmt: skip
    return batch
