"""GRPO/RLOO end to end on a tiny served policy: recorded token ids reach the loss unchanged, over
multi-turn tool-using rollouts; selective optimization; crashed and timed-out rollouts are dropped;
RLOO with a KL penalty on a LoRA adapter."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import agentlightning as agl
from agl_core.tracing.emit import emit_tool_call
from agl_core.training.adapters import rollout_triplets
from agl_core.training.algorithm import fit
from agl_trl.rl import RLAlgorithm
from agl_trl.serve.engine import BatchedGenerator
from tests.trainers.rl_fixtures import (
    CALC,
    HI,
    calc_agent,
    in_agent_span,
    length_reward,
    rl_config,
)


@pytest.fixture()
def store() -> agl.LightningStore:
    store = agl.LightningStore("memory://")
    agl.configure(store=store)
    return store


def test_triplet_token_ids_are_the_sampled_ids_over_a_multi_turn_tool_rollout(policy, store, tmp_path, monkeypatch):
    sampled: list[tuple[list[int], list[int]]] = []
    submit = BatchedGenerator.submit

    def recording_submit(self, prompt_ids, params, n=1):
        future = submit(self, prompt_ids, params, n)
        future.add_done_callback(lambda f: sampled.extend((list(prompt_ids), s.token_ids) for s in f.result()))
        return future

    monkeypatch.setattr(BatchedGenerator, "submit", recording_submit)
    algorithm = RLAlgorithm(rl_config(policy, tmp_path, temperature=0.0, max_new_tokens=48, aggregation="transition"))
    fit(algorithm, calc_agent(), store, [agl.Task(task_id="calc", input=CALC)], n_workers=2)
    batch = algorithm.last_batch
    # greedy: each rollout calls the calculator, then answers after the tool result -> 2 rows per rollout
    assert len(batch.rewards) == 2 * 3 and len(batch.prompts) == 2 * len(batch.rewards)
    rows = list(zip(batch.prompts, batch.completions))
    assert all(row in sampled for row in rows)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    first_call = tokenizer.decode(batch.completions[0])
    assert first_call.startswith('<tool_call>{"name": "calculator"')
    # the second call's prompt holds the first call's exact tokens followed by the tool result
    assert batch.prompts[1][len(batch.prompts[0]) :][: len(batch.completions[0])] == batch.completions[0]
    assert "<|im_start|>tool\n5<|im_end|>" in tokenizer.decode(batch.prompts[1])
    assert set(batch.agents) == {"calc"}


def two_agent_system(task, resources):
    def writer():
        return emit_tool_call(None, [{"role": "user", "content": "Say hi"}]).choices[0].message.content or ""

    draft = in_agent_span("writer", writer)

    def reviewer():
        messages = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": f"Review: {draft}"}]
        return emit_tool_call(None, messages).choices[0].message.content or ""

    in_agent_span("reviewer", reviewer)
    return length_reward(draft)


def test_selective_optimization_trains_only_the_writer(policy, store, tmp_path):
    algorithm = RLAlgorithm(rl_config(policy, tmp_path, optimize=["writer"], group_size=4))
    tasks = [agl.Task(task_id="a", input=HI), agl.Task(task_id="b", input=CALC)]
    fit(algorithm, two_agent_system, store, tasks, n_workers=2)
    batch = algorithm.last_batch
    assert len(batch.rewards) == 8 and len(batch.prompts) == 8 and set(batch.agents) == {"writer"}
    rows = set(zip(map(tuple, batch.prompts), map(tuple, batch.completions)))
    reviewer_calls = [
        t for r in store.query_rollouts(mode="train") for t in rollout_triplets(store, r, agents=["reviewer"])
    ]
    assert len(reviewer_calls) == 8 and all(t.response_token_ids for t in reviewer_calls)
    assert not any((tuple(t.prompt_token_ids), tuple(t.response_token_ids)) in rows for t in reviewer_calls)


def test_crashed_and_timed_out_rollouts_are_dropped_and_training_goes_on(policy, store, tmp_path):
    calls, lock = [0], threading.Lock()

    def flaky(task, resources):
        with lock:
            calls[0] += 1
            n = calls[0]
        if n == 2:
            raise RuntimeError("agent crashed")
        if n == 4:
            time.sleep(4.0)  # past rollout_timeout_s
        text = emit_tool_call(None, [{"role": "user", "content": "Say hi"}]).choices[0].message.content or ""
        return length_reward(text)

    config = rl_config(policy, tmp_path, episodes=2, rollout_timeout_s=1.5, max_new_tokens=8)
    summary = fit(RLAlgorithm(config), flaky, store, [agl.Task(task_id="a", input=HI), agl.Task(task_id="b", input=CALC)], n_workers=3)
    metrics = [m.metrics for m in store.query_metrics(summary["run_id"])]
    assert [m["step"] for m in metrics] == [1, 2]
    assert metrics[0]["dropped_rollouts"] == 2 and metrics[0]["rollouts"] == 4
    assert metrics[1]["dropped_rollouts"] == 0 and metrics[1]["rollouts"] == 6
    statuses = sorted(r.status for r in store.query_rollouts(mode="train"))
    assert statuses.count("failed") + statuses.count("cancelled") == 2


def test_rloo_with_kl_on_a_lora_adapter(policy, store, tmp_path):
    config = rl_config(policy, tmp_path, algorithm="rloo", beta=0.1, lora=True, lora_rank=4, group_size=4, checkpoint_every=1)
    tasks = [agl.Task(task_id="a", input=HI), agl.Task(task_id="b", input=CALC)]

    def agent(task, resources):
        text = emit_tool_call(None, [{"role": "user", "content": task["question"]}]).choices[0].message.content or ""
        return length_reward(text)

    summary = fit(RLAlgorithm(config), agent, store, tasks, n_workers=2)
    (metrics,) = [m.metrics for m in store.query_metrics(summary["run_id"])]
    assert metrics["kl"] is not None and metrics["kl"] >= 0 and torch.isfinite(torch.tensor(metrics["loss"]))
    checkpoint = Path(summary["checkpoint"])
    assert (checkpoint / "adapter_config.json").exists() and (checkpoint / "trainer_state.pt").exists()


def test_python_api_as_in_the_readme(policy, store, tmp_path):
    config = agl.RLConfig(model=str(policy), episodes=1, batch_size=2, group_size=2, max_new_tokens=8, output_dir=str(tmp_path))
    (tmp_path / "more.jsonl").write_text(json.dumps(HI) + "\n")
    with pytest.raises(ValueError, match="unknown task set 'What is 2[+]3[?]'"):  # a string is never a task input
        agl.RLOOTrainer(config=config, store=store).train(calc_agent(), eval_tasks=["What is 2+3?"])
    eval_tasks = [CALC, str(tmp_path / "more.jsonl")]  # a dict and a JSONL file: two sets, each reported
    summary = agl.RLOOTrainer(config=config, store=store).train(calc_agent(), train_tasks=[HI, CALC], eval_tasks=eval_tasks)
    assert summary["algorithm"] == "rloo" and Path(summary["checkpoint"]).name == "step-1"
    assert {"sampled_before", "sampled_after", "greedy_before", "greedy_after"} <= set(summary)
    after = json.loads((tmp_path / "heldout.json").read_text())["after"]
    assert after["heldout_accuracy_greedy"] == summary["greedy_after"]
    more = str(tmp_path / "more.jsonl")
    assert after["heldout_n/tasks"] == after[f"heldout_n/{more}"] == 1
    for key in ("heldout_reward_sampled", "heldout_accuracy_greedy"):  # the mean over both sets' single tasks
        assert after[key] == pytest.approx((after[f"{key}/tasks"] + after[f"{key}/{more}"]) / 2)
    per_set = store.query_metrics(summary["run_id"])[-1].metrics
    assert per_set[f"heldout_reward_greedy/{more}"] == after[f"heldout_reward_greedy/{more}"]  # what the dashboard charts
