"""Trajectory aggregation on a real served policy: a 3-turn, tool-using rollout becomes one row whose
trained tokens are exactly the ids `serve` sampled (with the log-probs it recorded), whose masked
tokens are exactly the rest, and whose loss equals the sum of the per-call losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import agentlightning as agl
from agl_core.tracing.emit import emit_reward, emit_tool_call
from agl_core.training.algorithm import fit
from agl_trl import update as update_module
from agl_trl.config import RLConfig
from agl_trl.losses import token_logps
from agl_trl.objectives import objective_for
from agl_trl.rl import RLAlgorithm
from agl_trl.serve.engine import BatchedGenerator
from agl_trl.trajectories import Batch, build_batch
from agl_trl.update import PolicyUpdate
from tests.trainers.rl_fixtures import CALC, rl_config
from tests.trainers.serve_model import QUESTION, TOOLS

TURN_REWARDS = (0.1, 0.5, 0.2)


def three_turn_agent(task: Any, resources: Any) -> float:
    """Tool call, an answer after the tool's result, then a new user turn; a reward after each call."""
    messages: list[dict[str, Any]] = list(QUESTION)
    for turn_reward in TURN_REWARDS:
        message = emit_tool_call(None, messages, TOOLS).choices[0].message
        emit_reward(turn_reward)
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "5"})
        if not message.tool_calls:
            messages.append({"role": "user", "content": "Say hi"})
    return 1.0


@pytest.fixture(scope="module")
def run(policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two greedy rollouts of the 3-turn agent, with what `serve` sampled for every call."""
    sampled: list[tuple[list[int], list[int], list[float]]] = []
    submit = BatchedGenerator.submit

    def recording_submit(self: Any, prompt_ids: Any, params: Any, n: int = 1) -> Any:
        future = submit(self, prompt_ids, params, n)
        future.add_done_callback(lambda f: sampled.extend((list(prompt_ids), s.token_ids, s.logprobs) for s in f.result()))
        return future

    store = agl.LightningStore("memory://")
    agl.configure(store=store)
    out = tmp_path_factory.mktemp("run")
    config = rl_config(policy, out, temperature=0.0, max_new_tokens=48, batch_size=1, group_size=2, learning_rate=0.0)
    algorithm = RLAlgorithm(config)
    task = agl.Task(task_id="calc", input=CALC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchedGenerator, "submit", recording_submit)
        summary = fit(algorithm, three_turn_agent, store, [task], n_workers=1)
    rollouts = store.query_rollouts(mode="train")
    yield {"store": store, "rollouts": rollouts, "task": task, "sampled": sampled, "algorithm": algorithm, "summary": summary}


def test_a_three_turn_rollout_is_one_row_of_exactly_the_sampled_tokens(run, policy) -> None:
    batch = run["algorithm"].last_batch
    assert len(batch.rewards) == 2 and len(batch.prompts) == 2 and len(batch.call_owner) == 6
    assert (batch.trajectory_rows, batch.transition_rows, batch.prefix_breaks) == (2, 0, 0)
    metrics = run["store"].query_metrics(run["summary"]["run_id"])[0].metrics
    assert (metrics["trajectory_rows"], metrics["transition_rows"], metrics["prefix_breaks"]) == (2, 0, 0)
    calls = iter(run["sampled"])  # one worker: the calls in order, rollout after rollout
    for prompt, completion, segments, behaviour in zip(batch.prompts, batch.completions, batch.segments, batch.behaviour):
        row = prompt + completion
        ids = sorted({s for s in segments if s >= 0})
        assert len(ids) == 3
        trained = [j for j, s in enumerate(segments) if s >= 0]
        for call in ids:
            served_prompt, served_ids, served_logprobs = next(calls)
            positions = [j for j, s in enumerate(segments) if s == call]
            start = len(prompt) + positions[0]
            # the call's prompt is the row up to its first sampled token; its trained tokens are what serve sampled
            assert row[:start] == served_prompt
            assert [completion[j] for j in positions] == served_ids
            assert [behaviour[j] for j in positions] == served_logprobs
            assert positions == list(range(positions[0], positions[0] + len(served_ids)))
        masked = [j for j in range(len(completion)) if j not in set(trained)]
        assert masked and all(segments[j] == -1 and behaviour[j] == 0.0 for j in masked)
        # the masked tokens hold the tool result and the new user turn
        text = AutoTokenizer.from_pretrained(policy).decode([completion[j] for j in masked])
        assert "<|im_start|>tool\n5<|im_end|>" in text and "<|im_start|>user\nSay hi<|im_end|>" in text


def test_recorded_logprobs_are_the_policys_own_at_each_trained_token(run, policy) -> None:
    batch = run["algorithm"].last_batch
    model = AutoModelForCausalLM.from_pretrained(policy).eval()  # the policy that sampled (lr 0 kept it)
    with torch.no_grad():
        logps, _ = token_logps(model, batch.prompts, batch.completions, pad_token_id=0)
    for i, (segments, behaviour) in enumerate(zip(batch.segments, batch.behaviour)):
        for j, s in enumerate(segments):
            if s >= 0:
                assert logps[i, j].item() == pytest.approx(behaviour[j], abs=1e-4)


def _loss(batch: Batch, policy: Path, config: RLConfig) -> float:
    model = AutoModelForCausalLM.from_pretrained(policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return PolicyUpdate(config, objective_for(config), model, tokenizer, optimizer, scheduler)(batch)["loss"]


@pytest.mark.parametrize(
    "options",
    [dict(loss_type="dapo"), dict(loss_type="grpo"), dict(loss_type="dr_grpo"), dict(algorithm="rloo"),
     dict(reward_policy="discounted", gamma=0.5)],
)  # fmt: skip
def test_the_trajectory_loss_is_the_sum_of_the_per_call_losses(run, policy, monkeypatch, options) -> None:
    """Every aggregation is normalised per call or per trained token of the whole batch, so the one
    forward over the merged row and six separate per-call forwards give the same loss."""
    config = RLConfig(**{"temperature": 0.0, "max_new_tokens": 48, "reward_policy": "per_call", **options})
    args = (run["store"], run["rollouts"], [run["task"]], None)
    merged = build_batch(*args, aggregation="trajectory", reward_policy=config.reward_policy)
    separate = build_batch(*args, aggregation="transition", reward_policy=config.reward_policy)
    assert len(merged.prompts) == 2 and len(separate.prompts) == 6 and separate.transition_rows == 6
    assert merged.call_returns == separate.call_returns
    whole = _loss(merged, policy, config)
    monkeypatch.setattr(update_module, "MICRO_BATCH_ROWS", 1)  # each call its own forward; losses summed
    per_call = _loss(separate, policy, config)
    assert whole != 0.0 and whole == pytest.approx(per_call, abs=1e-6)
