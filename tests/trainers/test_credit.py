"""Per-step credit and the prefix-break fallback on hand-made rollouts in a real store (known token
ids and rewards), and a step where no rollout finished stopping ``agent-lightning train`` in one line."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

import agentlightning as agl
from agl_core.cli.config import ConfigError
from agl_core.cli.main import main
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.training.algorithm import fit
from agl_core.types import Rollout, Span, Task
from agl_trl.config import RLConfig
from agl_trl.objectives import Frozen, objective_for
from agl_trl.rl import RLAlgorithm
from agl_trl.trajectories import Batch, build_batch
from tests.trainers.rl_fixtures import HI, rl_config

#: a call: (agent, prompt ids, sampled ids, rewards emitted after it)
Call = tuple[str, list[int], list[int], list[float]]


def add_rollout(store: LightningStore, task: str, repeat: int, calls: list[Call], final: float) -> Rollout:
    """A succeeded rollout whose spans are `calls` (``chat`` spans with `serve`'s token ids) and rewards."""
    started = store.start_rollout(input={}, task_id=task, metadata={"repeat": repeat})
    rid, aid = started.rollout_id, started.attempt.attempt_id
    spans: list[Span] = []
    clock, trace_id = 100.0, uuid.uuid4().hex

    def span(name: str, **attrs: Any) -> None:
        nonlocal clock
        clock += 1.0
        spans.append(Span(trace_id=trace_id, span_id=uuid.uuid4().hex[:16], name=name, start_time=clock, end_time=clock + 0.5,
                          attributes=attrs, rollout_id=rid, attempt_id=aid, sequence_id=len(spans)))  # fmt: skip

    for agent, prompt, response, rewards in calls:
        span(f"chat {agent}", **{semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT, semconv.GEN_AI_REQUEST_MODEL: agent,
                                 semconv.AGL_PROMPT_TOKEN_IDS: prompt, semconv.AGL_RESPONSE_TOKEN_IDS: response,
                                 semconv.AGL_RESPONSE_LOGPROBS: [-0.5] * len(response)})  # fmt: skip
        for value in rewards:
            span(semconv.SPAN_REWARD, **{semconv.AGL_REWARD_VALUE: value})
    store.add_spans(spans)
    store.update_attempt(rid, aid, "succeeded", reward=final)
    rollout = store.get_rollout(rid)
    assert rollout is not None and rollout.final_reward == final
    return rollout


@pytest.fixture()
def group() -> tuple[LightningStore, list[Rollout]]:
    """One task, two rollouts of two turns each; every turn's prompt extends the previous turn.

    Rollout A is rewarded 1.0 after its first call, nothing after its second; rollout B nothing
    after its first call, 0.5 twice after its second (they add up)."""
    store = LightningStore("memory://")
    a = add_rollout(store, "t", 0, [("a", [1, 2], [3], [1.0]), ("a", [1, 2, 3, 9], [4], [])], final=1.0)
    b = add_rollout(store, "t", 1, [("a", [1, 2], [5], []), ("a", [1, 2, 5, 9], [6], [0.5, 0.5])], final=1.0)
    return store, [b, a]  # finishing order does not matter: rows follow (task, repeat)


def advantages(batch: Batch, **config: Any) -> list[float]:
    cfg = RLConfig(**config)
    returns, groups, unit = batch.credit_units(cfg.reward_policy)
    values, _ = objective_for(cfg).advantages(torch.tensor(returns), groups, torch.tensor(unit), [Frozen(None, None, None)])
    return values.tolist()


def grpo(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return [(v - mean) / (std + 1e-4) for v in values]


TASKS = [Task(task_id="t", input={})]


def test_per_call_gives_each_call_the_rewards_that_follow_it(group) -> None:
    store, rollouts = group
    batch = build_batch(store, rollouts, TASKS, None, aggregation="transition", reward_policy="per_call")
    assert batch.call_returns == [1.0, 0.0, 0.0, 1.0] and batch.owner == [0, 0, 1, 1]
    # group-relative over the four calls of the task's group: (G - mean) / std, and leave-one-out
    assert advantages(batch, reward_policy="per_call") == pytest.approx(grpo([1.0, 0.0, 0.0, 1.0]))
    assert advantages(batch, reward_policy="per_call") == pytest.approx([0.86588, -0.86588, -0.86588, 0.86588], abs=1e-4)
    rloo = advantages(batch, reward_policy="per_call", algorithm="rloo")
    assert rloo == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])


def test_discounted_gives_each_call_the_discounted_return_after_it(group) -> None:
    store, rollouts = group
    batch = build_batch(store, rollouts, TASKS, None, aggregation="transition", reward_policy="discounted", gamma=0.5)
    assert batch.call_returns == [1.0, 0.0, 0.5, 1.0]  # B's first call: 0 + 0.5 * 1.0
    assert advantages(batch, reward_policy="discounted") == pytest.approx([0.78318, -1.30530, -0.26106, 0.78318], abs=1e-4)
    undiscounted = build_batch(store, rollouts, TASKS, None, aggregation="transition", reward_policy="discounted")
    assert undiscounted.call_returns == [1.0, 0.0, 1.0, 1.0]


def test_final_compares_rollouts_and_every_call_shares_its_rollouts_advantage() -> None:
    store = LightningStore("memory://")
    rollouts = [
        add_rollout(store, "t", 0, [("a", [1], [2], []), ("a", [1, 2, 7], [3], [])], final=1.0),
        add_rollout(store, "t", 1, [("a", [1], [4], []), ("a", [1, 4, 7], [5], [])], final=0.0),
        add_rollout(store, "t", 2, [("a", [1], [6], [])], final=0.0),
    ]
    batch = build_batch(store, rollouts, TASKS, None, aggregation="transition")
    per_rollout = grpo([1.0, 0.0, 0.0])
    assert advantages(batch) == pytest.approx([per_rollout[0]] * 2 + [per_rollout[1]] * 2 + [per_rollout[2]])
    # per-step policies without reward spans: the final reward follows the last call
    per_call = build_batch(store, rollouts, TASKS, None, aggregation="transition", reward_policy="per_call")
    assert per_call.call_returns == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_a_trajectory_row_carries_each_calls_own_advantage(group) -> None:
    store, rollouts = group
    batch = build_batch(store, rollouts, TASKS, None, reward_policy="per_call")  # trajectory: the default
    assert batch.prompts == [[1, 2], [1, 2]] and batch.completions == [[3, 9, 4], [5, 9, 6]]
    assert batch.segments == [[0, -1, 1], [2, -1, 3]] and batch.behaviour == [[-0.5, 0.0, -0.5], [-0.5, 0.0, -0.5]]
    per_call = advantages(batch, reward_policy="per_call")
    token_advantages = [[per_call[s] if s >= 0 else None for s in row] for row in batch.segments]
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert token_advantages == [[pytest.approx(a), None, pytest.approx(-a)], [pytest.approx(-a), None, pytest.approx(a)]]


def test_a_call_that_does_not_continue_its_agents_row_starts_a_new_one_and_is_counted() -> None:
    store = LightningStore("memory://")
    calls: list[Call] = [
        ("a", [1, 2], [3], []),
        ("a", [1, 2, 3, 9], [4], []),  # continues: 9 is a tool result
        ("a", [1, 2, 7], [5], []),  # rewrote its history: a prefix break
        ("b", [1, 2, 3, 9, 4], [6], []),  # another agent: its own row, no break
        ("a", [1, 2, 7, 5, 8], [6], []),  # continues the row the break opened
        ("a", [1, 2], [7], []),  # shorter than its row: a break
        ("a", [], [], []),  # no token ids (bypassed serve): untrainable
    ]
    rollouts = [add_rollout(store, "t", 0, calls, final=1.0)]
    batch = build_batch(store, rollouts, TASKS, None)
    assert (batch.trajectory_rows, batch.transition_rows, batch.prefix_breaks, batch.untrainable_calls) == (2, 2, 2, 1)
    assert batch.prompts == [[1, 2], [1, 2, 7], [1, 2, 3, 9, 4], [1, 2]]
    assert batch.completions == [[3, 9, 4], [5, 8, 6], [6], [7]]
    assert batch.segments == [[0, -1, 1], [2, -1, 3], [4], [5]] and batch.agents == ["a", "a", "b", "a"]
    transition = build_batch(store, rollouts, TASKS, None, aggregation="transition")
    assert (transition.trajectory_rows, transition.transition_rows, transition.prefix_breaks) == (0, 6, 0)
    assert transition.trained_tokens == batch.trained_tokens == 6
    assert build_batch(store, rollouts, TASKS, ["b"]).prompts == [[1, 2, 3, 9, 4]]  # optimize: only b's call


def test_a_step_where_no_rollout_finished_stops_train_with_the_first_failure(policy, tmp_path, monkeypatch) -> None:
    """Every prompt is longer than the model's context: serve answers 400 and the run stops at
    step 1 with that message as one line, instead of training on empty batches."""
    monkeypatch.setenv("AGL_HOME", str(tmp_path / "home"))
    (tmp_path / "tasks.jsonl").write_text(json.dumps({**HI, "id": "t0"}) + "\n")
    config = {
        "agent": {"name": "calc", "type": "openai", "system_prompt": "Use tools. " * 200},
        "model": {"path": str(policy)},
        "training": {"algorithm": "grpo", "episodes": 2, "batch_size": 1, "group_size": 2, "max_new_tokens": 8,
                     "output_dir": "run", "eval_every": 0, "checkpoint_every": 0},
        "environment": {"train_tasks": "tasks.jsonl"},
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--store", "memory://"])
    assert result.exit_code == 2, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: step 1: no rollout finished; the first failure: ")
    assert "the prompt has" in line and "the model's context is 256" in line
    assert "Traceback" not in result.output and not (Path(tmp_path / "run") / "checkpoints").exists()


def test_a_step_whose_rollouts_all_ended_without_a_reward_stops_the_run(policy, tmp_path) -> None:
    store = LightningStore("memory://")
    agl.configure(store=store)
    algorithm = RLAlgorithm(rl_config(policy, tmp_path, episodes=3))
    with pytest.raises(ConfigError, match=r"^step 1: no rollout finished with a reward \(the agent returned none"):
        fit(algorithm, lambda task, resources: None, store, [Task(task_id="a", input=HI)], n_workers=1)
    assert algorithm.last_batch is None  # nothing was trained on
