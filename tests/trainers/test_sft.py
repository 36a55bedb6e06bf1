"""SFT with TRL's SFTTrainer: from good traces (recorded token ids, response-only masks) collected
on the served policy, and from a JSONL of conversations; through the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import agentlightning as agl
from agl_core.tracing.emit import emit_tool_call
from agl_trl.export import run_checkpoint
from agl_trl.sft import trace_examples
from tests.trainers.rl_fixtures import CALC, HI, length_reward


def agent(task, resources):
    text = emit_tool_call(None, [{"role": "user", "content": task["question"]}]).choices[0].message.content or ""
    return length_reward(text)


def changed(policy: Path, checkpoint: Path) -> bool:
    before, after = load_file(str(policy / "model.safetensors")), load_file(str(checkpoint / "model.safetensors"))
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_sft_from_good_traces(policy, tmp_path):
    store = agl.LightningStore("memory://")
    config = agl.SFTConfig(model=str(policy), samples_per_task=4, max_new_tokens=8, batch_size=4, learning_rate=1e-2,
                           output_dir=str(tmp_path / "sft"))  # fmt: skip
    summary = agl.SFTTrainer(config, store=store).train(agent, train_tasks=[HI, CALC], eval_tasks=[HI])
    (metrics,) = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    rollouts = store.query_rollouts(status="succeeded", mode="train")
    good = [r for r in rollouts if r.final_reward == 1.0]
    assert len(rollouts) == 8 and 0 < len(good) < 8  # the threshold keeps only some traces
    assert metrics["examples"] == len(good) and metrics["loss"] > 0 and "heldout_reward" in metrics
    examples = trace_examples(store, rollouts, threshold=1.0, agents=None)
    for example in examples:  # the loss sees exactly the sampled response tokens
        mask = example["completion_mask"]
        assert len(mask) == len(example["input_ids"]) and mask == sorted(mask) and 0 < sum(mask) <= 8
    assert changed(policy, Path(summary["checkpoint"]))
    assert summary["sampled_before"] is not None and summary["greedy_after"] is not None


def test_sft_from_a_jsonl_of_conversations(policy, tmp_path):
    data = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]
    data.write_text("\n".join(json.dumps({"messages": chat}) for _ in range(4)) + "\n")
    config = agl.SFTConfig(model=str(policy), dataset=str(data), batch_size=2, learning_rate=1e-2, output_dir=str(tmp_path / "sft"))
    summary = agl.SFTTrainer(config, store=agl.LightningStore("memory://")).train(agent, train_tasks=[HI], eval_tasks=[])
    (metrics,) = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert metrics["examples"] == 4 and metrics["loss"] > 0
    assert changed(policy, Path(summary["checkpoint"]))


def test_resumed_sft_continues_after_the_last_finished_round(policy, tmp_path):
    def train(out: Path, episodes: int, resume: bool = False) -> dict:
        store = agl.LightningStore("memory://")
        agl.configure(store=store)
        config = agl.SFTConfig(model=str(policy), episodes=episodes, samples_per_task=2, max_new_tokens=8, batch_size=4,
                               learning_rate=1e-2, seed=3, output_dir=str(out))  # fmt: skip
        # one worker: requests reach the server one at a time, so batching cannot perturb the numerics
        return agl.SFTTrainer(config, store=store, n_workers=1).train(agent, train_tasks=[HI, CALC], eval_tasks=[], resume=resume)

    full = train(tmp_path / "full", episodes=2)
    first = train(tmp_path / "split", episodes=1)
    resumed = train(tmp_path / "split", episodes=2, resume=True)
    assert resumed["run_id"] == first["run_id"] != full["run_id"]
    rounds = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert rounds == [1, 2]  # round 1 is not trained twice
    assert Path(resumed["checkpoint"]).name == "step-2" and changed(Path(first["checkpoint"]), Path(resumed["checkpoint"]))
    assert not changed(Path(full["checkpoint"]), Path(resumed["checkpoint"]))  # the same weights as one uninterrupted run
    assert train(tmp_path / "split", episodes=2, resume=True)["checkpoint"] == resumed["checkpoint"]  # finished: nothing to do
    with pytest.raises(ValueError, match="has a held-out score"):  # no eval tasks: `export --checkpoint best` says why not
        run_checkpoint(str(tmp_path / "split"), agl.LightningStore("memory://"), "best")
